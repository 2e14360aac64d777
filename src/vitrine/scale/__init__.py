"""Scale-out: the same batch transforms as Ray tasks over shards."""

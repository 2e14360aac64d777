"""Word lists for the synthetic marketplace (`vitrine.data.synth`), English and Chinese.

Everything here is plain data. The simulator works on integer codes (leaf,
colour, brand, material, style, pattern); these tables turn codes into words.
Index ``i`` means the same thing in every language, so a shop generated with
``lang="zh"`` has the same hidden structure as one with ``lang="en"``.

Colour words must never occur anywhere else in the vocabulary (brands,
sentences, materials): products whose colour is shown only in the image must
have no colour word in their text. ``COLOR_CHARS_ZH`` lists the single Chinese
characters that name a colour, none of which appear outside ``COLORS``.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES: tuple[str, ...] = ("en", "zh")

# ---------------------------------------------------------------------------
# Structure shared by all languages.


@dataclass(frozen=True)
class Leaf:
    """A leaf product type: its place in the tree, its silhouette and its economics."""

    key: str
    top: int  # index into TOPS
    mid: int  # index into MIDS
    shape: str  # silhouette drawn by vitrine.data.synth
    base_price: float  # median price (en currency) at the middle brand tier
    materials: tuple[int, ...]  # indices into MATERIALS
    sized: bool  # worn, so reviews talk about fit


TOPS: tuple[str, ...] = ("clothing", "shoes", "bags", "home", "electronics", "sports")
MIDS: tuple[tuple[int, str], ...] = (
    (0, "tops"),
    (0, "bottoms"),
    (1, "outdoor"),
    (1, "leisure"),
    (2, "carry"),
    (2, "everyday"),
    (3, "kitchen"),
    (3, "decor"),
    (4, "audio"),
    (4, "accessories"),
    (5, "equipment"),
    (5, "gear"),
)

MATERIALS: tuple[str, ...] = (
    "cotton", "wool", "linen", "denim", "polyester", "leather", "suede", "canvas",
    "mesh", "nylon", "ceramic", "glass", "wood", "plastic", "aluminium", "silicone",
    "rubber", "steel", "foam",
)  # fmt: skip
_M = {m: i for i, m in enumerate(MATERIALS)}


def _mats(*names: str) -> tuple[int, ...]:
    return tuple(_M[n] for n in names)


LEAVES: tuple[Leaf, ...] = (
    Leaf("tshirt", 0, 0, "tshirt", 20, _mats("cotton", "linen", "polyester"), True),
    Leaf("jacket", 0, 0, "jacket", 90, _mats("denim", "leather", "wool", "nylon"), True),
    Leaf("dress", 0, 1, "dress", 60, _mats("cotton", "linen", "polyester", "wool"), True),
    Leaf("trousers", 0, 1, "trousers", 50, _mats("cotton", "denim", "linen", "wool"), True),
    Leaf("sneakers", 1, 2, "sneaker", 80, _mats("canvas", "mesh", "leather", "suede"), True),
    Leaf("boots", 1, 2, "boot", 120, _mats("leather", "suede", "rubber"), True),
    Leaf("sandals", 1, 3, "sandal", 40, _mats("leather", "rubber", "foam"), True),
    Leaf("slippers", 1, 3, "slipper", 25, _mats("wool", "cotton", "foam", "suede"), True),
    Leaf("backpack", 2, 4, "backpack", 60, _mats("nylon", "canvas", "leather", "polyester"), False),
    Leaf("tote", 2, 4, "tote", 35, _mats("canvas", "cotton", "leather"), False),
    Leaf("handbag", 2, 5, "handbag", 120, _mats("leather", "suede", "canvas"), False),
    Leaf("wallet", 2, 5, "wallet", 40, _mats("leather", "nylon"), False),
    Leaf("mug", 3, 6, "mug", 12, _mats("ceramic", "glass", "steel"), False),
    Leaf("lamp", 3, 7, "lamp", 45, _mats("glass", "wood", "aluminium", "ceramic"), False),
    Leaf("cushion", 3, 7, "cushion", 20, _mats("cotton", "linen", "wool", "polyester"), False),
    Leaf("vase", 3, 7, "vase", 30, _mats("ceramic", "glass", "wood"), False),
    Leaf("headphones", 4, 8, "headphones", 90, _mats("plastic", "aluminium", "leather"), False),
    Leaf("speaker", 4, 8, "speaker", 70, _mats("plastic", "aluminium", "wood"), False),
    Leaf("phonecase", 4, 9, "phonecase", 18, _mats("silicone", "plastic", "leather"), False),
    Leaf("watch", 4, 9, "watch", 150, _mats("steel", "leather", "silicone", "aluminium"), False),
    Leaf("football", 5, 10, "ball", 25, _mats("rubber", "leather", "plastic"), False),
    Leaf("yogamat", 5, 10, "mat", 35, _mats("rubber", "foam"), False),
    Leaf("bottle", 5, 11, "bottle", 20, _mats("steel", "plastic", "glass"), False),
    Leaf("cap", 5, 11, "cap", 20, _mats("cotton", "polyester", "wool"), False),
)

COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)  # fmt: skip
COLOR_RGB: tuple[tuple[int, int, int], ...] = (
    (210, 35, 40),
    (245, 130, 30),
    (245, 210, 40),
    (40, 150, 70),
    (35, 85, 200),
    (120, 50, 160),
    (240, 130, 180),
    (120, 75, 40),
    (25, 25, 25),
    (252, 252, 252),
)
BACKGROUND_RGB: tuple[int, int, int] = (222, 222, 222)
STYLES: tuple[str, ...] = ("classic", "casual", "sporty", "vintage", "minimalist", "elegant")
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted")
SIZE_FITS: tuple[str, ...] = ("small", "true", "large")  # index 0..2; "" when not worn

BRANDS_PER_TOP = 7
# Price tier of the i-th brand of every top category: 0 budget, 1 mid, 2 premium.
BRAND_TIERS: tuple[int, ...] = (0, 0, 1, 1, 1, 2, 2)

# ---------------------------------------------------------------------------
# Words per language.


@dataclass(frozen=True)
class Vocab:
    """Every word the generator writes, for one language."""

    sep: str  # between title words
    tops: tuple[str, ...]
    mids: tuple[str, ...]
    leaves: tuple[str, ...]  # title form
    leaves_query: tuple[str, ...]  # query / tag form
    colors: tuple[str, ...]  # title form
    colors_query: tuple[str, ...]
    materials: tuple[str, ...]
    materials_query: tuple[str, ...]
    styles: tuple[str, ...]
    styles_query: tuple[str, ...]
    patterns: tuple[str, ...]  # title words ("" for solid)
    pattern_tags: tuple[str, ...]
    brands: tuple[str, ...]  # BRANDS_PER_TOP per top category, in TOPS order
    top_sentences: tuple[tuple[str, ...], ...]  # per top category
    generic_sentences: tuple[str, ...]
    review_by_stars: tuple[tuple[str, ...], ...]  # index stars - 1
    review_fit: tuple[tuple[str, ...], ...]  # per SIZE_FITS
    review_material_good: tuple[str, ...]  # with {material}
    review_material_bad: tuple[str, ...]
    currency: str
    price_factor: float


EN = Vocab(
    sep=" ",
    tops=("Clothing", "Shoes", "Bags", "Home", "Electronics", "Sports"),
    mids=(
        "Tops", "Bottoms & Dresses", "Outdoor Shoes", "Leisure Shoes", "Carry", "Everyday",
        "Kitchen", "Decor", "Audio", "Accessories", "Equipment", "Gear",
    ),  # fmt: skip
    leaves=(
        "T-Shirt", "Jacket", "Dress", "Trousers", "Sneakers", "Boots", "Sandals", "Slippers",
        "Backpack", "Tote Bag", "Handbag", "Wallet", "Mug", "Table Lamp", "Cushion", "Vase",
        "Headphones", "Speaker", "Phone Case", "Watch", "Football", "Yoga Mat",
        "Water Bottle", "Cap",
    ),  # fmt: skip
    leaves_query=(
        "t-shirt", "jacket", "dress", "trousers", "sneakers", "boots", "sandals", "slippers",
        "backpack", "tote bag", "handbag", "wallet", "mug", "table lamp", "cushion", "vase",
        "headphones", "speaker", "phone case", "watch", "football", "yoga mat",
        "water bottle", "cap",
    ),  # fmt: skip
    colors=(
        "Red", "Orange", "Yellow", "Green", "Blue", "Purple", "Pink", "Brown", "Black", "White",
    ),  # fmt: skip
    colors_query=COLORS,
    materials=(
        "Cotton", "Wool", "Linen", "Denim", "Polyester", "Leather", "Suede", "Canvas", "Mesh",
        "Nylon", "Ceramic", "Glass", "Wooden", "Plastic", "Aluminium", "Silicone", "Rubber",
        "Steel", "Foam",
    ),  # fmt: skip
    materials_query=(
        "cotton", "wool", "linen", "denim", "polyester", "leather", "suede", "canvas", "mesh",
        "nylon", "ceramic", "glass", "wooden", "plastic", "aluminium", "silicone", "rubber",
        "steel", "foam",
    ),  # fmt: skip
    styles=("Classic", "Casual", "Sporty", "Vintage", "Minimalist", "Elegant"),
    styles_query=("classic", "casual", "sporty", "vintage", "minimalist", "elegant"),
    patterns=("", "Striped", "Polka-Dot"),
    pattern_tags=("solid", "striped", "polka-dot"),
    brands=(
        "Northwind", "Atelier Nova", "Kestrel", "Marlowe", "Fable & Co", "Tessera", "Halden",
        "Stride Lab", "Corvo", "Pellan", "Trailhound", "Vantor", "Solenne", "Brisk",
        "Carryall", "Lenoir", "Tarn", "Ostrava", "Quill", "Ferro", "Bellhop",
        "Hearthly", "Nook", "Oakhaven", "Linden", "Kiln & Co", "Poma", "Ystad",
        "Voltic", "Aurion", "Pixelle", "Sonara", "Zentro", "Helix", "Quanta",
        "Peakform", "Rally", "Summit", "Kinetic", "Apex Loop", "Tidal", "Forge",
    ),  # fmt: skip
    top_sentences=(
        ("Cut for everyday comfort.", "Easy to care for and machine washable.",
         "A versatile piece for any wardrobe.", "Tailored fit with neat seams."),
        ("Cushioned sole for all-day wear.", "Grippy outsole for city streets.",
         "Lightweight and breathable.", "Built to keep your feet comfortable."),
        ("Plenty of room for daily essentials.", "Sturdy handles and neat stitching.",
         "Inner pocket keeps small items organised.", "Goes from office to weekend."),
        ("Brings warmth to any room.", "Pairs well with modern interiors.",
         "Makes a thoughtful gift.", "Simple to clean and built to last."),
        ("Long battery life and quick pairing.", "Compact design that travels well.",
         "Clear sound and solid build.", "Works with most phones."),
        ("Made for training and play.", "Durable enough for weekly workouts.",
         "Light to carry to the gym.", "Ready for the outdoors."),
    ),  # fmt: skip
    generic_sentences=(
        "Ships in recyclable packaging.", "Backed by a one-year warranty.",
        "Free returns within 30 days.", "Designed with care.", "A customer favourite.",
        "Limited stock available.",
    ),  # fmt: skip
    review_by_stars=(
        ("Terrible quality, it fell apart within a week.", "Very poorly made, I am returning it.",
         "Cheap and flimsy, avoid."),
        ("Quality is disappointing.", "It started to wear out quickly.",
         "Not as good as I hoped."),
        ("It's okay, nothing special.", "Average quality, does the job.",
         "Decent but not great."),
        ("Good quality for the price.", "Solid product, happy with it.",
         "Nice and sturdy, would buy again."),
        ("Absolutely love it, excellent quality.", "Superb craftsmanship, worth every penny.",
         "Best purchase this year, very well made."),
    ),  # fmt: skip
    review_fit=(
        ("Runs small, order a size up.", "Fits tight, I had to size up."),
        ("True to size.", "Fits as expected."),
        ("Runs large, consider a size down.", "Quite roomy, size down."),
    ),
    review_material_good=("The {material} feels premium.", "The {material} is soft and durable."),
    review_material_bad=("The {material} feels cheap.", "The {material} is thin and scratchy."),
    currency="USD",
    price_factor=1.0,
)

ZH = Vocab(
    sep="",
    tops=("服装", "鞋靴", "箱包", "家居", "数码", "运动户外"),
    mids=(
        "上衣", "裙裤", "户外鞋", "居家鞋", "背包", "随身包",
        "餐厨", "家饰", "音频", "配件", "器材", "装备",
    ),  # fmt: skip
    leaves=(
        "T恤", "夹克", "连衣裙", "长裤", "运动鞋", "靴子", "凉鞋", "拖鞋",
        "双肩包", "托特包", "手提包", "钱包", "马克杯", "台灯", "抱枕", "花瓶",
        "耳机", "音箱", "手机壳", "手表", "足球", "瑜伽垫", "运动水壶", "棒球帽",
    ),  # fmt: skip
    leaves_query=(
        "T恤", "夹克", "连衣裙", "长裤", "运动鞋", "靴子", "凉鞋", "拖鞋",
        "双肩包", "托特包", "手提包", "钱包", "马克杯", "台灯", "抱枕", "花瓶",
        "耳机", "音箱", "手机壳", "手表", "足球", "瑜伽垫", "运动水壶", "棒球帽",
    ),  # fmt: skip
    colors=("红色", "橙色", "黄色", "绿色", "蓝色", "紫色", "粉色", "棕色", "黑色", "白色"),
    colors_query=("红色", "橙色", "黄色", "绿色", "蓝色", "紫色", "粉色", "棕色", "黑色", "白色"),
    materials=(
        "纯棉", "羊毛", "亚麻", "牛仔", "涤纶", "真皮", "麂皮", "帆布", "网面",
        "尼龙", "陶瓷", "玻璃", "实木", "塑料", "铝合金", "硅胶", "橡胶", "不锈钢", "泡沫",
    ),  # fmt: skip
    materials_query=(
        "纯棉", "羊毛", "亚麻", "牛仔", "涤纶", "真皮", "麂皮", "帆布", "网面",
        "尼龙", "陶瓷", "玻璃", "实木", "塑料", "铝合金", "硅胶", "橡胶", "不锈钢", "泡沫",
    ),  # fmt: skip
    styles=("经典款", "休闲风", "运动风", "复古风", "简约风", "优雅风"),
    styles_query=("经典款", "休闲风", "运动风", "复古风", "简约风", "优雅风"),
    patterns=("", "条纹", "波点"),
    pattern_tags=("纯色", "条纹", "波点"),
    brands=(
        "北风", "新艺坊", "飞隼", "马洛", "寓言", "泰瑟", "哈尔登",
        "步履", "科尔沃", "佩兰", "踏径", "万拓", "索兰", "轻捷",
        "行囊", "雷诺", "塔恩", "奥斯塔", "羽笔", "费罗", "鸿途",
        "暖居", "小筑", "橡港", "林登", "窑坊", "波玛", "于斯塔",
        "伏特", "奥瑞", "像素", "声纳", "臻拓", "螺旋", "量子",
        "巅峰", "拉力", "登顶", "动力", "极环", "潮汐", "锻造",
    ),  # fmt: skip
    top_sentences=(
        ("穿着舒适，适合日常搭配。", "易于打理，可机洗。", "百搭单品，四季皆宜。", "剪裁合身，走线整齐。"),
        ("鞋底柔软，久穿不累。", "防滑大底，城市通勤无忧。", "轻盈透气。", "让双脚全天保持舒适。"),
        ("容量充足，日常用品轻松收纳。", "提手结实，车线工整。", "内袋设计，小物件分类整理。", "通勤周末两相宜。"),
        ("为房间增添温馨氛围。", "与现代家居风格相得益彰。", "送礼佳品。", "易于清洁，经久耐用。"),
        ("续航持久，连接迅速。", "小巧便携，出行方便。", "音质清晰，做工扎实。", "兼容大多数手机。"),
        ("专为训练和运动打造。", "耐用结实，适合每周锻炼。", "轻便好携带，去健身房很方便。", "户外出行好伙伴。"),
    ),  # fmt: skip
    generic_sentences=(
        "采用环保包装发货。", "享受一年质保。", "三十天内免费退换。", "用心设计。", "深受顾客喜爱。", "库存有限。",
    ),  # fmt: skip
    review_by_stars=(
        ("质量太差，一周就坏了。", "做工粗糙，已经退货。", "又廉价又不结实，别买。"),
        ("质量让人失望。", "用了没多久就磨损了。", "没有想象中好。"),
        ("一般般，没什么特别。", "质量一般，能用。", "还行，但不算好。"),
        ("性价比不错。", "东西挺好，很满意。", "结实耐用，会回购。"),
        ("非常喜欢，质量超好。", "做工精致，物超所值。", "今年买过最好的东西，做工扎实。"),
    ),  # fmt: skip
    review_fit=(
        ("尺码偏小，建议买大一号。", "穿着偏紧，建议选大一码。"),
        ("尺码标准。", "大小合适。"),
        ("尺码偏大，建议买小一号。", "比较宽松，建议选小一码。"),
    ),
    review_material_good=("{material}摸起来很有质感。", "{material}柔软又耐用。"),
    review_material_bad=("{material}摸起来很廉价。", "{material}又薄又粗糙。"),
    currency="CNY",
    price_factor=7.0,
)

VOCABS: dict[str, Vocab] = {"en": EN, "zh": ZH}

# Single characters that name a colour in Chinese; used to check that a text
# says nothing about colour.
COLOR_CHARS_ZH: tuple[str, ...] = ("红", "橙", "黄", "绿", "蓝", "紫", "粉", "棕", "黑", "白")


def vocab(lang: str) -> Vocab:
    """Return the word lists for ``lang`` ("en" or "zh")."""
    try:
        return VOCABS[lang]
    except KeyError:
        raise ValueError(f"Unknown language {lang!r}; choose from {list(LANGUAGES)}.") from None


def _check_tables() -> None:
    n_leaf, n_col = len(LEAVES), len(COLORS)
    for v in VOCABS.values():
        assert len(v.leaves) == len(v.leaves_query) == n_leaf
        assert len(v.colors) == len(v.colors_query) == n_col == len(COLOR_RGB)
        assert len(v.materials) == len(v.materials_query) == len(MATERIALS)
        assert len(v.styles) == len(v.styles_query) == len(STYLES)
        assert len(v.tops) == len(TOPS) and len(v.mids) == len(MIDS)
        assert len(v.brands) == BRANDS_PER_TOP * len(TOPS)
        assert len(v.top_sentences) == len(TOPS)


_check_tables()

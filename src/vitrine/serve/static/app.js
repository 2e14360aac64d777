// vitrine storefront: plain JS over the HTTP API (no build step).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const LS = window.localStorage;
  const PAGE = 12;
  const st = {
    q: "", offset: 0, filters: {}, image: null, requestId: null, total: null,
    shopper: LS.getItem("vitrine.shopper") || "",
    anon: LS.getItem("vitrine.anon") || ("anon-" + Math.random().toString(36).slice(2, 12)),
    key: LS.getItem("vitrine.key") || "",
    recent: JSON.parse(LS.getItem("vitrine.recent") || "[]"),
  };
  LS.setItem("vitrine.anon", st.anon);
  // a key may be handed over in the URL fragment (never sent to the server): /#key=vk_...
  const m = /(?:^|[#&])key=([^&]+)/.exec(window.location.hash);
  if (m) {
    st.key = decodeURIComponent(m[1]);
    LS.setItem("vitrine.key", st.key);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  const userId = () => st.shopper || st.anon;
  const headers = (extra) => Object.assign(st.key ? { Authorization: "Bearer " + st.key } : {}, extra || {});
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  async function api(path, opts) {
    const r = await fetch(path, Object.assign({}, opts || {}, { headers: headers((opts || {}).headers) }));
    const body = r.headers.get("content-type") && r.headers.get("content-type").includes("json") ? await r.json() : null;
    if (!r.ok) throw new Error((body && body.detail) || ("HTTP " + r.status));
    return body;
  }

  // -- events ---------------------------------------------------------------
  let eventsState = "";
  async function record(events) {
    if (!st.key || !events.length) { eventsState = st.key ? "" : "not recorded (no API key)"; showKeyState(); return; }
    try {
      await api("/events", { method: "POST", body: JSON.stringify(events), headers: { "Content-Type": "application/json" } });
      eventsState = "recorded " + events.length + " event(s)";
    } catch (e) { eventsState = "events failed: " + e.message; }
    showKeyState();
  }
  function showKeyState() { $("apikey-state").textContent = (st.key ? "key set" : "no key") + (eventsState ? " · " + eventsState : ""); }
  function event(type, item, extra) {
    return Object.assign({ user_id: userId(), product_id: item.product_id, event: type }, extra || {});
  }

  // -- rendering --------------------------------------------------------------
  function explanationHtml(expl) {
    if (!expl) return "<em>no explanation</em>";
    const entries = Object.entries(expl).filter(([, v]) => v !== null);
    const max = Math.max(1e-9, ...entries.map(([, v]) => Math.abs(v)));
    return entries.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).map(([k, v]) =>
      `<div class="row"><span>${esc(k)}</span><div class="bar${v < 0 ? " neg" : ""}" style="width:${(100 * Math.abs(v) / max).toFixed(0)}%"></div><span>${v.toFixed(3)}</span></div>`
    ).join("");
  }

  function card(item, ctx) {
    const el = document.createElement("div");
    el.className = "card";
    el.dataset.productId = item.product_id;
    el.innerHTML =
      (item.pinned ? '<span class="pin">pinned</span>' : "") +
      `<img loading="lazy" alt="${esc(item.title || item.product_id)}" src="${item.image_url ? esc(item.image_url) : ""}">` +
      `<div class="title">${esc(item.title || item.product_id)}</div>` +
      `<div class="meta"><span class="price">${item.price != null ? "$" + item.price.toFixed(2) : ""}</span>` +
      `<span class="rating">${item.rating != null ? "★ " + item.rating.toFixed(1) : ""}${item.rating_count ? " (" + item.rating_count + ")" : ""}</span></div>` +
      (ctx.explain ? '<button class="why" type="button">Why this result?</button><div class="explanation" hidden></div>' : "");
    const open = () => {
      record([event("click", item, { query: ctx.query || null, request_id: ctx.requestId, position: item.position })]);
      openDetail(item);
    };
    el.querySelector("img").addEventListener("click", open);
    el.querySelector(".title").addEventListener("click", open);
    const why = el.querySelector(".why");
    if (why) why.addEventListener("click", () => {
      const box = el.querySelector(".explanation");
      box.innerHTML = explanationHtml(item.explanation);
      box.hidden = !box.hidden;
    });
    return el;
  }

  function renderFacets(f) {
    const box = $("facets");
    box.innerHTML = "";
    if (!f) return;
    const section = (name, values, label) => {
      if (!values || !values.length) return;
      const h = document.createElement("h4");
      h.textContent = name.replace("_", " ");
      box.appendChild(h);
      for (const v of values) {
        const a = document.createElement("a");
        const on = label(v).on;
        a.className = on ? "on" : "";
        a.innerHTML = `${esc(label(v).text)} <span>${v.count}</span>`;
        a.addEventListener("click", () => { label(v).toggle(); st.offset = 0; search(); });
        box.appendChild(a);
      }
    };
    const simple = (col) => (v) => ({
      text: v.value, on: st.filters[col] === v.value,
      toggle: () => { st.filters[col] = st.filters[col] === v.value ? undefined : v.value; },
    });
    section("category", f.category, simple("category"));
    section("brand", f.brand, simple("brand"));
    section("color", f.color, simple("color"));
    section("price", f.price, (v) => ({
      text: v.max == null ? `$${v.min}+` : `$${v.min}–${v.max}`,
      on: st.filters.price_min === v.min,
      toggle: () => {
        const on = st.filters.price_min === v.min;
        st.filters.price_min = on ? undefined : v.min;
        st.filters.price_max = on || v.max == null ? undefined : v.max;
      },
    }));
    section("in_stock", f.in_stock, (v) => ({
      text: v.value === "true" ? "in stock" : "out of stock", on: String(st.filters.in_stock) === v.value,
      toggle: () => { st.filters.in_stock = String(st.filters.in_stock) === v.value ? undefined : v.value; },
    }));
  }

  // -- search -------------------------------------------------------------------
  let seq = 0;
  async function search() {
    const mine = ++seq;
    const personalize = $("personalize").checked;
    const params = { limit: PAGE, offset: st.offset, explain: true, facets: true, personalize };
    if (st.q) params.q = st.q;
    params.user_id = userId();
    for (const [k, v] of Object.entries(st.filters)) if (v !== undefined && v !== "") params[k] = v;
    $("status").textContent = "Searching…";
    let res;
    try {
      if (st.image) {
        const fd = new FormData();
        fd.append("image", st.image, st.image.name || "query.png");
        for (const [k, v] of Object.entries(params)) fd.append(k, String(v));
        res = await api("/search/image", { method: "POST", body: fd });
      } else {
        res = await api("/search?" + new URLSearchParams(params).toString());
      }
    } catch (e) { $("status").textContent = "Search failed: " + e.message; return; }
    if (mine !== seq) return;
    st.requestId = res.request_id;
    st.total = res.total;
    const grid = $("results");
    grid.innerHTML = "";
    grid.dataset.requestId = res.request_id;
    grid.dataset.personalized = String(res.personalized);
    const ctx = { explain: true, query: st.q, requestId: res.request_id };
    for (const item of res.items) grid.appendChild(card(item, ctx));
    renderFacets(res.facets);
    const who = res.personalized ? ` · personalized for ${st.shopper || "you"}` : " · not personalized";
    const what = st.image ? "image" + (st.q ? " + “" + st.q + "”" : "") : (st.q ? "“" + st.q + "”" : "popular products");
    $("status").textContent = `${res.total != null ? res.total + " results" : res.items.length + " shown"} for ${what}${who}`;
    $("prev").disabled = st.offset === 0;
    $("next").disabled = res.items.length < PAGE;
    record(res.items.map((it) => event("impression", it, { query: st.q || null, request_id: res.request_id, position: it.position })));
  }

  async function loadRecs() {
    $("recs-for").textContent = st.shopper || "you";
    try {
      const res = await api("/recommend/" + encodeURIComponent(userId()) + "?limit=8");
      const grid = $("recs");
      grid.innerHTML = "";
      for (const item of res.items) grid.appendChild(card(item, { explain: false, requestId: res.request_id }));
    } catch (e) { $("recs").textContent = "Recommendations unavailable: " + e.message; }
  }

  async function openDetail(item) {
    $("detail").hidden = false;
    $("detail-title").textContent = item.title || item.product_id;
    $("detail-body").innerHTML = `<p>${esc(item.brand || "")} · ${esc(item.category || "")} · ${esc(item.color || "")}` +
      ` · ${item.price != null ? "$" + item.price.toFixed(2) : ""}</p><button id="add-to-cart" type="button">Add to cart</button>`;
    $("add-to-cart").addEventListener("click", () => {
      record([event("add_to_cart", item, { query: st.q || null, request_id: st.requestId })]);
      $("add-to-cart").textContent = "Added ✓";
    });
    try {
      const res = await api("/similar/" + encodeURIComponent(item.product_id) + "?limit=6");
      const grid = $("similar");
      grid.innerHTML = "";
      for (const it of res.items) grid.appendChild(card(it, { explain: false, requestId: res.request_id }));
    } catch (e) { $("similar").textContent = "Similar items unavailable: " + e.message; }
  }

  // -- suggestions ------------------------------------------------------------------
  let sugTimer = null, sugActive = -1, sugSeq = 0;
  function hideSuggestions() { $("suggestions").hidden = true; sugActive = -1; }
  async function suggest() {
    const text = $("q").value;
    if (!text.trim()) { hideSuggestions(); return; }
    const mine = ++sugSeq;
    let res;
    try { res = await api("/suggest?" + new URLSearchParams({ q: text, user_id: userId(), limit: 8 })); } catch (e) { return; }
    if (mine !== sugSeq) return;
    const ul = $("suggestions");
    ul.innerHTML = "";
    for (const s of res.suggestions) {
      const li = document.createElement("li");
      li.innerHTML = `<span>${esc(s.text)}</span><small>${esc(s.kind)}</small>`;
      li.dataset.text = s.text;
      li.addEventListener("mousedown", (ev) => { ev.preventDefault(); pick(s.text); });
      ul.appendChild(li);
    }
    ul.hidden = !res.suggestions.length;
    sugActive = -1;
  }
  function pick(text) { $("q").value = text; hideSuggestions(); submit(); }
  $("q").addEventListener("input", () => { clearTimeout(sugTimer); sugTimer = setTimeout(suggest, 120); });
  $("q").addEventListener("keydown", (ev) => {
    const items = [...$("suggestions").querySelectorAll("li")];
    if ($("suggestions").hidden || !items.length) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      sugActive = (sugActive + (ev.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      items.forEach((li, i) => li.classList.toggle("active", i === sugActive));
    } else if (ev.key === "Enter" && sugActive >= 0) {
      ev.preventDefault();
      pick(items[sugActive].dataset.text);
    } else if (ev.key === "Escape") hideSuggestions();
  });
  $("q").addEventListener("blur", () => setTimeout(hideSuggestions, 100));

  // -- controls ---------------------------------------------------------------------
  function submit() { st.q = $("q").value.trim(); st.offset = 0; st.filters = {}; search(); }
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); hideSuggestions(); submit(); });
  $("image-input").addEventListener("change", () => {
    const f = $("image-input").files[0];
    if (!f) return;
    st.image = f;
    $("image-preview").src = URL.createObjectURL(f);
    $("image-query").hidden = false;
    st.q = $("q").value.trim(); st.offset = 0; st.filters = {};
    search();
  });
  $("image-clear").addEventListener("click", () => { st.image = null; $("image-query").hidden = true; $("image-input").value = ""; search(); });
  $("prev").addEventListener("click", () => { st.offset = Math.max(0, st.offset - PAGE); search(); });
  $("next").addEventListener("click", () => { st.offset += PAGE; search(); });
  $("personalize").addEventListener("change", () => search());
  function setShopper(id) {
    st.shopper = id.trim();
    LS.setItem("vitrine.shopper", st.shopper);
    if (st.shopper && !st.recent.includes(st.shopper)) {
      st.recent = [st.shopper, ...st.recent].slice(0, 10);
      LS.setItem("vitrine.recent", JSON.stringify(st.recent));
    }
    renderShoppers();
    search();
    loadRecs();
  }
  function renderShoppers() {
    $("shopper-current").textContent = st.shopper || "anonymous";
    $("shopper").value = st.shopper;
    $("shopper-list").innerHTML = st.recent.map((s) => `<option value="${esc(s)}">`).join("");
  }
  $("shopper-apply").addEventListener("click", () => setShopper($("shopper").value));
  $("shopper").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); setShopper($("shopper").value); } });
  $("apikey").value = st.key;
  $("apikey-save").addEventListener("click", () => { st.key = $("apikey").value.trim(); LS.setItem("vitrine.key", st.key); showKeyState(); });

  window.vitrine = { state: st, search, loadRecs };
  renderShoppers();
  showKeyState();
  search();
  loadRecs();
})();

// reelscope dashboard, search: moments across every video (GET /search), each opening the player there.
// Uses h(), fmt(), apiJson(), basename() from app.js.
"use strict";

async function runSearch(event) {
  event.preventDefault();
  const form = event.target;
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (String(value).trim()) params.append(key, String(value).trim());
  const list = document.getElementById("search-results");
  list.replaceChildren(h("li", { class: "empty" }, "searching…"));
  try {
    const found = await apiJson(`/search?${params}`);
    list.dataset.query = found.query;
    list.replaceChildren(
      ...(found.moments.length
        ? found.moments.map((m) =>
            h(
              "li",
              { dataset: { videoId: m.video_id, start: m.start_s, kind: m.kind } },
              h(
                "a",
                { href: `#video=${encodeURIComponent(m.video_id)}&t=${m.start_s.toFixed(2)}`, title: `${m.kind} in ${m.video_id}${typeof m.conf === "number" ? ` · confidence ${(m.conf * 100).toFixed(0)}%` : ""}` },
                h("span", { class: `chip ${m.kind}` }, m.kind),
                h("span", { class: "hit" }, m.text),
                h("span", { class: "muted small" }, `${basename(m.uri) || m.video_id} @ ${fmt(m.start_s)}`),
              ),
            ),
          )
        : [h("li", { class: "empty" }, "no moments found")]),
    );
  } catch (err) {
    list.replaceChildren(h("li", { class: "empty error" }, `search failed: ${err.message}`));
  }
}

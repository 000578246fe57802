"""The map page at ``/``: self-written HTML and JS, no CDN, so it works offline. It lists the
computed tile-years (``/coverage``) and shows the false-colour map tiles of a year as a grid of
``<img>`` tiles that pans (drag) and zooms (buttons, wheel)."""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TESSERA embeddings</title>
<style>
body{margin:0;font:14px sans-serif;display:flex;height:100vh}
#side{width:260px;padding:8px;overflow:auto;background:#f4f4f4}
#map{flex:1;position:relative;overflow:hidden;background:#223}
#map img{position:absolute;width:256px;height:256px;image-rendering:pixelated}
.fp{position:absolute;border:1px solid #ff0;pointer-events:none}
</style></head><body>
<div id="side"><h3>TESSERA embeddings</h3>
<label>Year <select id="year"></select></label>
<button id="zin">+</button><button id="zout">&minus;</button>
<p id="status">loading…</p><ul id="list"></ul></div>
<div id="map"></div>
<script>
const map = document.getElementById("map"), yearSel = document.getElementById("year");
const R = 6378137, HALF = Math.PI * R;
let cov = null, z = 10, cx = 0, cy = 0;  // view centre in web-mercator metres
const merc = (lon, lat) => [R * lon * Math.PI / 180,
  R * Math.log(Math.tan(Math.PI / 4 + lat * Math.PI / 360))];
const mpp = () => 2 * HALF / 256 / 2 ** z;
function draw() {
  map.innerHTML = "";
  const W = map.clientWidth, H = map.clientHeight, res = mpp(), span = 256 * res;
  const x0 = cx - W / 2 * res, y0 = cy + H / 2 * res, year = yearSel.value;
  for (let tx = Math.floor((x0 + HALF) / span); tx * span - HALF < x0 + W * res; tx++)
    for (let ty = Math.floor((HALF - y0) / span); HALF - ty * span > y0 - H * res; ty++) {
      if (tx < 0 || ty < 0 || tx >= 2 ** z || ty >= 2 ** z) continue;
      const img = document.createElement("img");
      img.src = `/tiles/${z}/${tx}/${ty}.png?year=${year}`;
      img.style.left = ((tx * span - HALF - x0) / res) + "px";
      img.style.top = ((y0 - (HALF - ty * span)) / res) + "px";
      img.onerror = () => img.remove();
      map.appendChild(img);
    }
  for (const p of cov.partitions.filter(p => String(p.year) === year)) {
    const [a, b] = merc(p.bbox[0], p.bbox[3]), [c, d] = merc(p.bbox[2], p.bbox[1]);
    const box = document.createElement("div");
    box.className = "fp";
    Object.assign(box.style, {left: (a - x0) / res + "px", top: (y0 - b) / res + "px",
      width: (c - a) / res + "px", height: (b - d) / res + "px"});
    map.appendChild(box);
  }
}
async function init() {
  cov = await (await fetch("/coverage")).json();
  for (const y of cov.years) yearSel.add(new Option(y, y));
  const list = document.getElementById("list");
  for (const p of cov.partitions) list.insertAdjacentHTML("beforeend",
    `<li>${p.tile} ${p.year}</li>`);
  document.getElementById("status").textContent =
    `${cov.partitions.length} tile-years computed`;
  if (cov.partitions.length) {
    const b = cov.partitions[0].bbox, [a, c] = merc(b[0], b[1]), [d, e] = merc(b[2], b[3]);
    cx = (a + d) / 2; cy = (c + e) / 2;
    z = Math.max(0, Math.min(18, Math.floor(Math.log2(2 * HALF / (d - a) * map.clientWidth / 256 / 1.5))));
  }
  draw();
  document.body.dataset.ready = "1";
}
yearSel.onchange = draw;
document.getElementById("zin").onclick = () => { z = Math.min(18, z + 1); draw(); };
document.getElementById("zout").onclick = () => { z = Math.max(0, z - 1); draw(); };
map.onwheel = e => { e.preventDefault(); z = Math.max(0, Math.min(18, z - Math.sign(e.deltaY))); draw(); };
let drag = null;
map.onmousedown = e => drag = [e.clientX, e.clientY];
window.onmouseup = () => drag = null;
window.onmousemove = e => { if (!drag) return; cx -= (e.clientX - drag[0]) * mpp();
  cy += (e.clientY - drag[1]) * mpp(); drag = [e.clientX, e.clientY]; draw(); };
init();
</script></body></html>
"""

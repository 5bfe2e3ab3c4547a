"""The monitor's views: a self-refreshing HTML dashboard and the same charts as a PNG report.

The page draws inline SVG (no external scripts: the service may run offline) from the service's
own `trends` endpoint, and refreshes every `refresh` seconds. When the service requires an API
key, the page asks for it once and sends it as `X-API-Key` (kept in the tab's sessionStorage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .store import Store

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Financial sentiment monitor</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem}
h2{font-size:1rem;margin:.2rem 0}
table{border-collapse:collapse;font-size:.85rem}td,th{border-bottom:1px solid #eee;padding:.2rem .5rem}
.legend span{margin-right:1rem;font-size:.8rem}
</style></head><body>
<h1>Financial sentiment monitor</h1>
<p>Window <b id="window">__WINDOW__</b>; refreshes every __REFRESH__ s; last update <span id="updated">never</span>
<span id="status"></span></p>
<p class="legend"><span style="color:#c0392b">&#9632; negative share</span>
<span style="color:#2c6fbb">&#9632; mean score (P(pos)-P(neg))</span>
<span style="color:#999">&#9632; volume</span><span style="color:#c0392b">&#9650; alert</span></p>
<form id="keyform" hidden><label>This service needs an API key:
<input id="apikey" type="password" autocomplete="off"></label> <button type="submit">Show</button></form>
<div class="grid" id="charts"></div>
<h2>Alerts</h2><table id="alerts"><thead><tr><th>detected</th><th>rule</th><th>scope</th><th>key</th>
<th>value</th><th>baseline</th><th>z</th></tr></thead><tbody></tbody></table>
<script>
const W=440,H=170,P=28,REFRESH=__REFRESH__*1000,WINDOW="__WINDOW__";
function el(t,a,txt){const e=document.createElementNS("http://www.w3.org/2000/svg",t);
 for(const k in a)e.setAttribute(k,a[k]);if(txt)e.textContent=txt;return e}
function chart(s){
 const svg=el("svg",{width:W,height:H,class:"chart","data-key":s.key,"data-scope":s.scope});
 const pts=s.points;if(!pts.length)return svg;
 const t0=Date.parse(pts[0].t),t1=Date.parse(pts[pts.length-1].t)||t0+1;
 const x=t=>P+(W-2*P)*((Date.parse(t)-t0)/Math.max(1,t1-t0));
 const vmax=Math.max(1,...pts.map(p=>p.volume));
 const y01=v=>H-P-(H-2*P)*v, ys=v=>H-P-(H-2*P)*(v+1)/2;
 svg.append(el("line",{x1:P,y1:H-P,x2:W-P,y2:H-P,stroke:"#888"}));
 const bw=Math.max(1,(W-2*P)/pts.length-1);
 for(const p of pts)svg.append(el("rect",{x:x(p.t)-bw/2,y:y01(p.volume/vmax),width:bw,
   height:(H-2*P)*p.volume/vmax,fill:"#ddd",class:"bar"}));
 const line=(f,color,cls)=>{let d="";for(const p of pts){const v=f(p);if(v===null)continue;
   d+=(d?"L":"M")+x(p.t).toFixed(1)+","+v.toFixed(1)}
   if(d)svg.append(el("path",{d:d,fill:"none",stroke:color,"stroke-width":1.5,class:cls}))};
 line(p=>p.negative_share===null?null:y01(p.negative_share),"#c0392b","neg-line");
 line(p=>p.mean_score===null?null:ys(p.mean_score),"#2c6fbb","score-line");
 for(const a of s.alerts){const ax=x(a.window_start);if(ax<P-1||ax>W-P+1)continue;
   const m=el("path",{d:`M${ax},${P-4}l-6,-10h12z`,fill:"#c0392b",class:"alert-marker"});
   m.append(el("title",{},a.message));svg.append(m);
   svg.append(el("line",{x1:ax,y1:P-4,x2:ax,y2:H-P,stroke:"#c0392b","stroke-dasharray":"3,3"}))}
 svg.append(el("text",{x:P,y:H-8,"font-size":10},pts[0].t.slice(0,16)));
 svg.append(el("text",{x:W-P-90,y:H-8,"font-size":10},pts[pts.length-1].t.slice(0,16)));
 svg.append(el("text",{x:2,y:P,"font-size":10},"1"));svg.append(el("text",{x:2,y:H-P,"font-size":10},"0"));
 return svg}
async function refresh(){
 try{
  const key=sessionStorage.getItem("verticals_api_key"),opts={headers:key?{"X-API-Key":key}:{}};
  const [tr,al]=await Promise.all([fetch("trends?window="+encodeURIComponent(WINDOW),opts),fetch("alerts?limit=50",opts)]);
  if(tr.status===401||al.status===401){document.getElementById("keyform").hidden=false;
   throw new Error(key?"wrong API key":"API key needed")}
  if(!tr.ok||!al.ok)throw new Error("HTTP "+tr.status+"/"+al.status);
  document.getElementById("keyform").hidden=true;
  const series=(await tr.json()).series, alerts=(await al.json()).alerts;
  const box=document.getElementById("charts");box.replaceChildren();
  for(const s of series){const c=document.createElement("div");c.className="card";
   const h=document.createElement("h2");h.textContent=s.scope+": "+s.key+" ("+s.alerts.length+" alerts)";
   c.append(h,chart(s));box.append(c)}
  const body=document.querySelector("#alerts tbody");body.replaceChildren();
  for(const a of alerts){const r=document.createElement("tr");r.className="alert-row";
   for(const v of [a.detected_at.slice(0,16),a.rule,a.scope,a.key,a.value,a.baseline,a.z]){
    const td=document.createElement("td");td.textContent=v;r.append(td)}body.append(r)}
  document.getElementById("updated").textContent=new Date().toISOString();
  document.getElementById("status").textContent="";
 }catch(e){document.getElementById("status").textContent=" (refresh failed: "+e.message+")"}}
document.getElementById("keyform").addEventListener("submit",e=>{e.preventDefault();
 sessionStorage.setItem("verticals_api_key",document.getElementById("apikey").value);refresh()});
refresh();setInterval(refresh,REFRESH);
</script></body></html>
"""


def render_page(window: str = "6h", refresh_s: int = 10) -> str:
    """The dashboard HTML for one window size and refresh period."""
    return PAGE.replace("__WINDOW__", window).replace("__REFRESH__", str(int(refresh_s)))


def write_png_report(store: Store, out: str | Path, window: str = "6h") -> Path:
    """Writes one chart per topic (negative share, mean score, volume, alerts) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from .monitor import trends

    series = trends(store, window=window)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = max(1, len(series))
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.4 * rows), sharex=True, squeeze=False)
    for ax, s in zip(axes[:, 0], series, strict=False):
        _plot_series(ax, s, pd)
    if not series:
        axes[0, 0].text(
            0.5, 0.5, "no scored items yet", ha="center", transform=axes[0, 0].transAxes
        )
    fig.suptitle(f"Financial sentiment by topic ({window} windows)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _plot_series(ax, s: dict[str, Any], pd) -> None:
    t = pd.to_datetime([p["t"] for p in s["points"]])
    volume = ax.twinx()
    volume.bar(
        t,
        [p["volume"] for p in s["points"]],
        width=0.8 * (t[1] - t[0]) if len(t) > 1 else 0.2,
        color="#ddd",
        zorder=0,
    )
    volume.set_ylabel("volume", fontsize=8)
    ax.set_zorder(volume.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(t, [p["negative_share"] for p in s["points"]], color="#c0392b", label="negative share")
    ax.plot(t, [p["mean_score"] for p in s["points"]], color="#2c6fbb", label="mean score")
    for alert in s["alerts"]:
        ax.axvline(
            pd.Timestamp(alert["window_start"]), color="#c0392b", linestyle="--", linewidth=1
        )
        ax.plot([pd.Timestamp(alert["window_start"])], [1.0], marker="v", color="#c0392b")
    ax.set_ylim(-1.05, 1.1)
    ax.set_title(f"{s['scope']}: {s['key']} ({len(s['alerts'])} alerts)", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="lower left")

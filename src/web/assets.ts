/**
 * The dashboard's files, embedded in the binary at build time (imported as text: no CDN, no
 * files next to the binary, works offline). Scripts and style sheets are named *.txt so the type
 * checker takes them for the text they are imported as. Layout (docs/bus-views.md):
 *   common.js   the one WebSocket, dispatch by message type, formatting, CanServer.timeChart
 *   buses.js    the bus selector (several buses): CanServer.busStatus, CanServer.onBus
 *   <view>.js   one file per view (overview, clients, routes, frames, ampio, signals, jobs, tx): a new view is its file,
 *               one line here, one <section> and one <script> in index.html
 *   uplot.js/.css  uPlot (npm uplot, pinned), shared by every view that plots
 */
import htmlText from "./assets/index.html" with { type: "text" };
import cssText from "./assets/style.css.txt" with { type: "text" };
import faviconText from "./assets/favicon.svg" with { type: "text" };
import commonText from "./assets/common.js.txt" with { type: "text" };
import busesText from "./assets/buses.js.txt" with { type: "text" };
import overviewText from "./assets/overview.js.txt" with { type: "text" };
import clientsText from "./assets/clients.js.txt" with { type: "text" };
import framesText from "./assets/frames.js.txt" with { type: "text" };
import ampioText from "./assets/ampio.js.txt" with { type: "text" };
import txText from "./assets/tx.js.txt" with { type: "text" };
import jobsText from "./assets/jobs.js.txt" with { type: "text" };
import routesText from "./assets/routes.js.txt" with { type: "text" };
import signalsText from "./assets/signals.js.txt" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };

const JS = "text/javascript; charset=utf-8";

/** path → [content type, body] */
export const ASSETS: Readonly<Record<string, readonly [string, string]>> = {
  "/": ["text/html; charset=utf-8", String(htmlText)],
  "/favicon.svg": ["image/svg+xml", String(faviconText)],
  "/assets/style.css": ["text/css; charset=utf-8", cssText],
  "/assets/uplot.js": [JS, String(uplotJs)],
  "/assets/uplot.css": ["text/css; charset=utf-8", String(uplotCss)],
  "/assets/common.js": [JS, commonText],
  "/assets/buses.js": [JS, busesText],
  "/assets/overview.js": [JS, overviewText],
  "/assets/clients.js": [JS, clientsText],
  "/assets/frames.js": [JS, framesText],
  "/assets/ampio.js": [JS, ampioText],
  "/assets/tx.js": [JS, txText],
  "/assets/jobs.js": [JS, jobsText],
  "/assets/routes.js": [JS, routesText],
  "/assets/signals.js": [JS, signalsText],
};

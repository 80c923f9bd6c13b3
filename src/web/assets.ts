/**
 * The dashboard's files, embedded in the binary at build time (imported as text: no CDN, no
 * files next to the binary, works offline). The script and style sheet are named *.txt so the
 * type checker takes them for the text they are imported as.
 */
import htmlText from "./assets/index.html" with { type: "text" };
import appText from "./assets/app.js.txt" with { type: "text" };
import cssText from "./assets/style.css.txt" with { type: "text" };

/** path → [content type, body] */
export const ASSETS: Readonly<Record<string, readonly [string, string]>> = {
  "/": ["text/html; charset=utf-8", String(htmlText)],
  "/assets/app.js": ["text/javascript; charset=utf-8", appText],
  "/assets/style.css": ["text/css; charset=utf-8", cssText],
};

/**
 * Types for the files src/web/assets.ts imports as text (`with { type: "text" }`): Bun hands each
 * over as its contents, a string. The type checker cannot know that from the import attribute.
 */
declare module "*.svg" {
  const text: string;
  export default text;
}
declare module "uplot/dist/uPlot.iife.min.js" {
  const text: string;
  export default text;
}
declare module "uplot/dist/uPlot.min.css" {
  const text: string;
  export default text;
}

/** Bounds of one API request. */

/** Frames one POST may carry. */
export const MAX_FRAMES_PER_REQUEST = 256;
/** Request bodies larger than this are refused (413) without being read to the end. */
export const MAX_BODY_BYTES = 64 * 1024;

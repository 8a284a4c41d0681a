/**
 * Numbers client and main agree on, in a module of its own: the API modules build their
 * TypeBox schemas as they load, which every `sedfs` command paid for (~8 ms of a short
 * one's start) to read four numbers. The schemas import them from here.
 */

/** Most servers one chunk's placement may ask main to leave out. */
export const MAX_EXCLUDED = 16;

/**
 * Chunks one `GET /v1/nodes/:id/content` lists at most (1 GiB of 4 MiB chunks), each
 * with a read ticket; a download asks for the rest as it goes (`?from=`). One answer for
 * every chunk of a large file made main sign a ticket per chunk at once (a terabyte:
 * 262,144 signatures, seconds of its thread, for any reader who asked), and its tickets
 * expired (5 minutes) long before a slow download reached the last chunks.
 */
export const MANIFEST_PAGE = 256;

/**
 * Files whose contents one `POST /v1/contents` may ask for: `get -r` asks for a folder's
 * small files this many at a time instead of one request each.
 */
export const CONTENTS_MAX = 256;

/** Items at most in one part of a rotation (nodes, grants); a client sends ~8 MiB a part. */
export const REKEY_PART_MAX = 50_000;

/** The latest time a JavaScript Date holds (year 275760): a grant dated later could not be shown. */
export const MAX_DATE_MS = 8.64e15;

/** How far ahead of the clock reading it a grant may be dated (clocks disagree): a day. */
export const GRANT_DATE_AHEAD_MS = 24 * 60 * 60 * 1000;

/**
 * A chunk transfer that makes no progress this long has its server asked whether it
 * still runs; one that does not answer that either has failed (a stopped process, a
 * machine that froze, a cut link: its kernel may still take connections and bytes), and
 * the next copy is tried, or one is made elsewhere. undici gives a new connection as
 * long. The 60 s of undici's header and body timeouts, which a hung server met before,
 * cost a put over it 71 s for 64 MiB and a get 120 s (one wait per group of chunks in
 * flight).
 */
export const STALL_MS = 10_000;

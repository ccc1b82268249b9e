/**
 * Flask-Duplex browser client: JSON over a WebSocket that reconnects by itself.
 *
 * An ES module with no dependency and no build step. Flask-Duplex serves it at
 * `url_for("flask_duplex.client")`:
 *
 *     import { connect } from "{{ url_for('flask_duplex.client') }}";
 *     let lastId = null;
 *     const client = connect("/chat", { hello: () => ({ type: "resume", last_id: lastId }) });
 *     client.on("state", ({ state }) => { status.textContent = state; });
 *     client.on("message", (message) => { lastId = message.id; });
 *     client.send({ text: "hi" });   // queued while not online
 *
 * States, each also an event of its own name:
 *
 *     connecting --open--> online --drop--> reconnecting --open--> online ...
 *          \                  \                  \
 *           `----- close(), or a close code that isFinal() accepts -----> closed
 *
 * - `connecting`: the first connection is being opened.
 * - `online`: open; the hello and the queued messages went out first.
 * - `reconnecting`: the connection dropped (or could not be opened); the client
 *   waits a random delay, then tries again, and again, until it is online.
 * - `closed`: for good. `close()` was called, or the server closed with a code
 *   that `isFinal(code, reason)` accepts (default: 1008 and 4000-4999).
 *
 * Delivery is at most once in both directions, outside rooms with history. A
 * message handed to the socket just before a drop may be lost; an app that
 * must not lose one numbers its messages and resumes from the last number it
 * saw, through `hello`.
 *
 * Rooms with history (`duplex.keep_history(...)` on the server) add recovery
 * from the server to the page, with no code in the page: each message of such
 * a room arrives with the room's position (an epoch and an offset), which the
 * client remembers. Every connection it opens hands the positions back in its
 * URL (`?duplex-since=`), and the server's `ws.join(room)` replays what was
 * missed before the live messages: in order, none twice. A `joined` event says
 * whether that worked (`recovered`) and why not (`reason`): the history was
 * too short or lost, and the page needs a full state. The `message` event of
 * such a room carries the value as broadcast, as in any other room.
 *
 * This module builds no DOM: show the state and the messages as the app likes.
 *
 * @module flask-duplex
 */

/** @typedef {"connecting" | "online" | "reconnecting" | "closed"} State */

/**
 * @typedef {object} Options
 * @property {(() => unknown) | null} [hello] Called each time a connection
 *   opens, the first one included; what it returns (unless `undefined` or
 *   `null`) is sent as JSON before anything else, e.g.
 *   `() => ({ type: "resume", last_id: lastId })`. If it throws, the error is
 *   reported (`reportError`) and nothing is sent in its place.
 * @property {number} [maxQueue=100] Messages kept while not online; sending one
 *   more drops the oldest, with a `drop` event. `0` keeps none.
 * @property {number} [retryDelay=500] Milliseconds: the first retry waits a
 *   random time between 0 and this; each retry after doubles the range.
 * @property {number} [maxRetryDelay=5000] Milliseconds: the range stops
 *   growing here, so a retry comes at least this often. The backoff starts over
 *   after a connection that stayed online this long.
 * @property {number} [openTimeout=10000] Milliseconds an attempt may take to
 *   open before it is abandoned (and counted as a drop).
 * @property {(code: number, reason: string) => boolean} [isFinal] Whether a
 *   close from the server ends the client for good. Default: {@link isFinalCode}.
 * @property {string | string[]} [protocols] WebSocket subprotocols to offer.
 * @property {boolean} [recover=true] Hand the positions of the rooms with
 *   history back on every connection (`duplex-since` in the URL's query), so
 *   that the server replays what was missed. `false` still reads positions
 *   (see `positions`) and unwraps messages, but never hands them back.
 */

/**
 * @typedef {object} Joined The `detail` of a `joined` event.
 * @property {string} room The room (the server's name for it).
 * @property {boolean} recovered Every message missed since the position this
 *   client handed back was replayed, before this event's live messages.
 * @property {"too_old" | "epoch_changed" | "unknown_room" | "invalid_position" | null} reason
 *   Why a position handed back was not recovered; `null` if it was, or if
 *   there was none (a first join).
 * @property {number} missed How many messages are replayed after this event.
 * @property {string | null} epoch The room's epoch (`null`: the room keeps no history).
 * @property {number | null} offset The room's last message before the live ones.
 */

/** The query-string parameter that hands positions back to the server. */
const SINCE_PARAMETER = "duplex-since";
/** What a frame of a room with history starts with, as the server writes it. */
const FRAME_START = '{"duplex":';

/**
 * The defaults of {@link Options}.
 * @type {Readonly<Required<Options>>}
 */
export const defaults = Object.freeze({
  hello: null,
  maxQueue: 100,
  retryDelay: 500,
  maxRetryDelay: 5000,
  openTimeout: 10000,
  isFinal: isFinalCode,
  protocols: [],
  recover: true,
});

/**
 * The default of `isFinal`: 1008 (policy violation) and the codes 4000-4999
 * that apps choose for themselves end the client; any other close is a drop.
 * @param {number} code
 * @returns {boolean}
 */
export function isFinalCode(code) {
  return code === 1008 || (code >= 4000 && code <= 4999);
}

/**
 * The wait before retry number `attempt` (1, 2, ...): exponential backoff with
 * full jitter, a random time between 0 and
 * `min(maxRetryDelay, retryDelay * 2 ** (attempt - 1))`.
 * @param {number} attempt
 * @param {{retryDelay: number, maxRetryDelay: number}} options
 * @param {() => number} [random] A number in [0, 1).
 * @returns {number} Milliseconds.
 */
export function backoff(attempt, { retryDelay, maxRetryDelay }, random = Math.random) {
  return random() * Math.min(maxRetryDelay, retryDelay * 2 ** (attempt - 1));
}

/**
 * The `ws:` or `wss:` URL of `target` (a path, or an `http(s):` or `ws(s):`
 * URL), resolved against `base`: a page served over https connects with wss.
 * @param {string | URL} target
 * @param {string} [base] Defaults to the page's `location.href`.
 * @returns {string}
 * @throws {TypeError} The URL is invalid, or its scheme is not one of these four.
 */
export function websocketURL(target, base = globalThis.location?.href) {
  const url = new URL(target, base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`flask-duplex: cannot open a WebSocket to ${url.href}`);
  }
  url.hash = "";
  return url.href;
}

/**
 * A JSON WebSocket client that reconnects by itself. Every event is a
 * `CustomEvent`; listen with `addEventListener(type, (event) => event.detail)`
 * or `on(type, (detail) => ...)`.
 *
 * | event | `detail` |
 * |---|---|
 * | `state` | `{state, previous, code?, reason?}` on each change of state |
 * | `connecting`, `online`, `reconnecting`, `closed` | the same, when entering that state |
 * | `message` | the decoded JSON value of a text message; in a room with history, the value as broadcast (a `Uint8Array` for bytes) |
 * | `joined` | {@link Joined}: this connection joined a room with history (or lost its feed mid-connection) |
 * | `invalid` | `{data, error}`: a message that is not JSON text (it is not delivered) |
 * | `retry` | `{attempt, delay, code, reason}`: a retry is scheduled in `delay` ms |
 * | `drop` | `{message, reason}`: a message that will never be sent; `reason` is `"overflow"` (the queue was full) or `"closed"` |
 *
 * `code` and `reason` come from the close that caused the change (1006 when
 * the connection dropped or could not be opened).
 */
export class DuplexClient extends EventTarget {
  /** @type {Required<Options>} */
  #options;
  /** @type {State} */
  #state = "connecting";
  /** @type {WebSocket | null} */
  #socket = null;
  /** @type {{value: unknown, text: string}[]} */
  #queue = [];
  #attempt = 0;
  #onlineSince = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #openTimer;
  /** @type {Map<string, {epoch: string, offset: number}>} Room to the last message's position. */
  #positions = new Map();

  /**
   * Start connecting at once.
   * @param {string | URL} target The WebSocket route, usually a path such as
   *   `"/chat"`; see {@link websocketURL}.
   * @param {Options} [options]
   * @throws {TypeError} An unknown option, or an invalid URL.
   * @throws {RangeError} An option out of range.
   */
  constructor(target, options = {}) {
    super();
    /** The `ws:` or `wss:` URL this client connects to. */
    this.url = websocketURL(target);
    this.#options = checkOptions(options);
    this.#open();
  }

  /** @returns {State} */
  get state() {
    return this.#state;
  }

  /** @returns {number} How many messages wait to be sent. */
  get queued() {
    return this.#queue.length;
  }

  /**
   * Where the client is in each room with history: a new object each time,
   * room to `[epoch, offset]` of the last message received, the shape
   * `duplex-since` hands back.
   * @returns {Record<string, [string, number]>}
   */
  get positions() {
    /** @type {Record<string, [string, number]>} */
    const copy = {};
    for (const [room, { epoch, offset }] of this.#positions) copy[room] = [epoch, offset];
    return copy;
  }

  /**
   * Call `listener(event.detail)` for each event `type`.
   * @param {string} type
   * @param {(detail: any) => void} listener
   * @returns {() => void} Removes the listener.
   */
  on(type, listener) {
    const handler = (/** @type {Event} */ event) => listener(/** @type {CustomEvent} */ (event).detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /**
   * Send `value` as JSON: now if online, else once online again, after the
   * hello and after what was queued before it.
   * @param {unknown} value
   * @returns {boolean} `true` if handed to the socket now; `false` if queued,
   *   or dropped (see the `drop` event).
   * @throws {TypeError} `value` cannot be encoded as JSON.
   */
  send(value) {
    const text = JSON.stringify(value);
    if (typeof text !== "string") {
      throw new TypeError(`flask-duplex: cannot send ${typeof value} as JSON`);
    }
    if (this.#state === "closed") {
      this.#emit("drop", { message: value, reason: "closed" });
      return false;
    }
    const socket = this.#socket;
    if (this.#state === "online" && socket?.readyState === WebSocket.OPEN) {
      socket.send(text);
      return true;
    }
    this.#queue.push({ value, text });
    while (this.#queue.length > this.#options.maxQueue) {
      const dropped = /** @type {{value: unknown}} */ (this.#queue.shift());
      this.#emit("drop", { message: dropped.value, reason: "overflow" });
    }
    return false;
  }

  /**
   * Close for good: no more retries; what is queued is dropped (`drop` events
   * with reason `"closed"`); the state becomes `closed`. Calling it again does
   * nothing.
   * @param {number} [code=1000] 1000, or 3000-4999.
   * @param {string} [reason=""] At most 123 bytes of UTF-8.
   * @throws {RangeError} An invalid code or a reason too long; nothing changes.
   */
  close(code = 1000, reason = "") {
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError(`flask-duplex: a client may close with 1000 or 3000-4999, not ${code}`);
    }
    if (new TextEncoder().encode(reason).length > 123) {
      throw new RangeError("flask-duplex: a close reason takes at most 123 bytes");
    }
    if (this.#state === "closed") return;
    const socket = this.#socket;
    this.#socket = null;
    if (socket !== null) socket.close(code, reason);
    this.#finish(code, reason);
  }

  #open() {
    const socket = new WebSocket(this.#connectionURL(), this.#options.protocols);
    this.#socket = socket;
    socket.onopen = () => this.#opened(socket);
    socket.onmessage = (event) => this.#received(socket, event);
    socket.onclose = (event) => this.#dropped(socket, event.code, event.reason);
    // Closing a socket that is still connecting fails it: its close event comes.
    this.#openTimer = setTimeout(() => socket.close(), this.#options.openTimeout);
  }

  /**
   * The URL of the next connection: the client's, plus the positions to
   * resume from. Appended, so the URL's own query stays byte for byte; the
   * server reads the last `duplex-since`.
   * @returns {string}
   */
  #connectionURL() {
    if (!this.#options.recover || this.#positions.size === 0) return this.url;
    const url = new URL(this.url);
    const since = `${SINCE_PARAMETER}=${encodeURIComponent(JSON.stringify(this.positions))}`;
    url.search = url.search ? `${url.search}&${since}` : `?${since}`;
    return url.href;
  }

  /** @param {WebSocket} socket */
  #opened(socket) {
    if (socket !== this.#socket) return;
    clearTimeout(this.#openTimer);
    this.#onlineSince = Date.now();
    const hello = this.#hello();
    if (hello !== undefined) socket.send(hello);
    for (const { text } of this.#queue.splice(0)) socket.send(text);
    // Online only now, so that a listener's send() goes after the queue.
    this.#setState("online", {});
  }

  /** @returns {string | undefined} */
  #hello() {
    if (this.#options.hello === null) return undefined;
    try {
      const value = this.#options.hello();
      return value === undefined || value === null ? undefined : JSON.stringify(value);
    } catch (error) {
      globalThis.reportError?.(error);
      return undefined;
    }
  }

  /**
   * @param {WebSocket} socket
   * @param {MessageEvent} event
   */
  #received(socket, event) {
    if (socket !== this.#socket) return;
    if (typeof event.data !== "string") {
      this.#emit("invalid", { data: event.data, error: new TypeError("a binary message") });
      return;
    }
    let value;
    try {
      value = JSON.parse(event.data);
    } catch (error) {
      this.#emit("invalid", { data: event.data, error });
      return;
    }
    if (event.data.startsWith(FRAME_START) && isFrame(value)) {
      this.#frame(value);
      return;
    }
    this.#emit("message", value);
  }

  /**
   * A frame of a room with history: note the position it carries, then hand
   * on the message it wraps, if any.
   * @param {Frame} frame
   */
  #frame(frame) {
    const { room, epoch, offset } = frame;
    if (frame.duplex === "joined") {
      const missed = Number.isInteger(frame.missed) ? frame.missed : 0;
      if (typeof epoch === "string" && Number.isInteger(offset)) {
        // `offset` is the room's last message, and the `missed` ones before
        // it are still to come: until they do, this client is where it was.
        this.#positions.set(room, { epoch, offset: offset - missed });
      } else {
        this.#positions.delete(room); // The room keeps no history (any more).
      }
      this.#emit("joined", {
        room,
        recovered: frame.recovered === true,
        reason: frame.reason ?? null,
        missed,
        epoch: epoch ?? null,
        offset: offset ?? null,
      });
      return;
    }
    if (typeof epoch !== "string" || !Number.isInteger(offset)) return;
    const known = this.#positions.get(room);
    if (known !== undefined && known.epoch === epoch && offset <= known.offset) return; // Had it.
    this.#positions.set(room, { epoch, offset });
    if (frame.duplex === "message") {
      this.#emit("message", "binary" in frame ? fromBase64(String(frame.binary)) : frame.data);
    }
  }

  /**
   * @param {WebSocket} socket
   * @param {number} code
   * @param {string} reason
   */
  #dropped(socket, code, reason) {
    if (socket !== this.#socket) return;
    clearTimeout(this.#openTimer);
    this.#socket = null;
    if (this.#options.isFinal(code, reason)) {
      this.#finish(code, reason);
      return;
    }
    const stayed = this.#state === "online" ? Date.now() - this.#onlineSince : 0;
    if (stayed >= this.#options.maxRetryDelay) {
      this.#attempt = 0;
    }
    this.#attempt += 1;
    const delay = backoff(this.#attempt, this.#options);
    this.#retryTimer = setTimeout(() => this.#open(), delay);
    this.#setState("reconnecting", { code, reason });
    this.#emit("retry", { attempt: this.#attempt, delay, code, reason });
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #finish(code, reason) {
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#openTimer);
    for (const { value } of this.#queue.splice(0)) {
      this.#emit("drop", { message: value, reason: "closed" });
    }
    this.#setState("closed", { code, reason });
  }

  /**
   * @param {State} state
   * @param {{code?: number, reason?: string}} detail
   */
  #setState(state, detail) {
    const previous = this.#state;
    if (state === previous) return;
    this.#state = state;
    this.#emit("state", { state, previous, ...detail });
    this.#emit(state, { state, previous, ...detail });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Open a {@link DuplexClient} to `target`.
 * @param {string | URL} target
 * @param {Options} [options]
 * @returns {DuplexClient}
 */
export function connect(target, options) {
  return new DuplexClient(target, options);
}

/**
 * @typedef {{duplex: "message" | "joined" | "position", room: string, [field: string]: any}} Frame
 */

/**
 * Whether a decoded text message is a frame of a room with history.
 * @param {unknown} value
 * @returns {value is Frame}
 */
function isFrame(value) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const { duplex, room } = /** @type {Record<string, unknown>} */ (value);
  const kinds = ["message", "joined", "position"];
  return kinds.includes(/** @type {string} */ (duplex)) && typeof room === "string";
}

/**
 * The bytes of a base64 string.
 * @param {string} text
 * @returns {Uint8Array}
 */
function fromBase64(text) {
  const chars = atob(text);
  const bytes = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i += 1) bytes[i] = chars.charCodeAt(i);
  return bytes;
}

/**
 * @param {Options} options
 * @returns {Required<Options>}
 */
function checkOptions(options) {
  for (const name of Object.keys(options)) {
    if (!Object.hasOwn(defaults, name)) {
      const known = Object.keys(defaults).join(", ");
      throw new TypeError(`flask-duplex: unknown option ${name}; the options are ${known}`);
    }
  }
  const merged = { ...defaults, ...options };
  if (!Number.isInteger(merged.maxQueue) || merged.maxQueue < 0) {
    throw new RangeError(`flask-duplex: maxQueue must be an integer >= 0, not ${merged.maxQueue}`);
  }
  for (const name of /** @type {const} */ (["retryDelay", "maxRetryDelay", "openTimeout"])) {
    if (!(Number.isFinite(merged[name]) && merged[name] > 0)) {
      throw new RangeError(`flask-duplex: ${name} must be a number of milliseconds > 0`);
    }
  }
  if (merged.hello !== null && typeof merged.hello !== "function") {
    throw new TypeError("flask-duplex: hello must be a function, or null");
  }
  if (typeof merged.isFinal !== "function") {
    throw new TypeError("flask-duplex: isFinal must be a function (code, reason) => boolean");
  }
  if (typeof merged.recover !== "boolean") {
    throw new TypeError("flask-duplex: recover must be true or false");
  }
  return merged;
}

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
 * Delivery is at most once in both directions. A message handed to the socket
 * just before a drop may be lost; an app that must not lose one numbers its
 * messages and resumes from the last number it saw, through `hello`.
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
 */

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
 * | `message` | the decoded JSON value of a text message |
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
    const socket = new WebSocket(this.url, this.#options.protocols);
    this.#socket = socket;
    socket.onopen = () => this.#opened(socket);
    socket.onmessage = (event) => this.#received(socket, event);
    socket.onclose = (event) => this.#dropped(socket, event.code, event.reason);
    // Closing a socket that is still connecting fails it: its close event comes.
    this.#openTimer = setTimeout(() => socket.close(), this.#options.openTimeout);
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
    this.#emit("message", value);
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
  return merged;
}

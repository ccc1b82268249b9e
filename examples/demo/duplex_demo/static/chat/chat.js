// The chat page: joins a room over /chat/ws, shows messages, who is online, and notices.
//
// The socket is Flask-Duplex's browser client: it reconnects by itself, and on
// every (re)connect sends what `hello` returns first. Once joined, that is the
// join again. The chat's rooms keep history on the server, and the client hands
// its position in the room back on every reconnect: the join replays what this
// page missed, in order, before the live messages. When it cannot (the page was
// away too long, the server lost the history), the server sends the room's
// recent messages instead, and the page shows those in place of its list.
//
// Everything people typed goes into the page with textContent, never as HTML.
// Elements are found by id, and form fields by name; the data-testid attributes
// of the template and of the items made here are for the tests only.

import { connect } from "flask-duplex";
import { hueOf } from "../colors.js";

const byId = (id) => document.getElementById(id);
const root = byId("chat");

const status = byId("status");
const notice = byId("notice");
const joinForm = byId("join");
const nameInput = joinForm.elements.name;
const roomInput = joinForm.elements.room;
const roomView = byId("room");
const messages = byId("messages");
const online = byId("online");
const composer = byId("composer");
const messageInput = composer.elements.message;
const leaveButton = byId("leave");
const maxLength = Number(root.dataset.maxLength);

// A random key per page load: after a reconnect, the name this page held is
// still its own, even if its old connection has not left yet.
const key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
  b.toString(16).padStart(2, "0"),
).join("");

let joined = null; // {name, room} once the server said "joined"; kept across reconnects.
let wanted = null; // {name, room} asked for, not answered yet.
let listed = false; // The list holds the room's messages up to now: a rejoin may resume.
let arrived = null; // Public messages since a "joined" that a history follows: newer than it.
const shown = new Set(); // Ids of the public messages shown, to show each once.

const client = connect(root.dataset.socket, {
  hello: () => (joined ? joinRequest(joined, listed) : joinRequest(wanted)),
});

/** The join of `who`; `resume`: the page shows that room's messages up to the drop. */
function joinRequest(who, resume = false) {
  if (who === null) return null;
  return { type: "join", name: who.name, room: who.room, key, resume };
}

// -- the connection's state ---------------------------------------------------

function showState() {
  status.textContent = client.state;
  status.dataset.state = client.state;
}
showState();
client.on("state", showState);

// -- what the server sends ----------------------------------------------------

const handlers = {
  welcome({ worker }) {
    root.dataset.worker = String(worker);
    byId("worker").textContent = String(worker);
  },
  joined({ name, room, resumed }) {
    wanted = null;
    joined = { name, room };
    localStorage.setItem("chat-name", name);
    window.history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
    byId("room-title").textContent = ` · ${room}`;
    byId("me").textContent = `You are ${name}.`;
    joinForm.hidden = true;
    roomView.hidden = false;
    leaveButton.hidden = false;
    setNotice("");
    messageInput.focus();
    arrived = resumed ? null : []; // Resumed: what it missed came before this, no history.
  },
  history({ room, messages: list }) {
    // The room's recent messages, whole: they replace the list. What arrived
    // since "joined" may be newer than the server's read of them: it stays.
    if (room !== joined?.room) return;
    const newer = arrived ?? [];
    clearMessages();
    [...list, ...newer].forEach(showPublic);
    listed = true;
  },
  message(message) {
    if (message.room !== joined?.room) return;
    arrived?.push(message);
    showPublic(message);
  },
  private: showPrivate,
  online({ room, users }) {
    if (room === (joined ?? wanted)?.room) showOnline(users);
  },
  left() {
    leaveRoom();
  },
  error({ message, request }) {
    setNotice(message);
    if (request === "join") {
      // Refused (the name is taken, say): back to the form, in no room.
      leaveRoom();
      nameInput.focus();
    }
  },
};

client.on("message", (message) => {
  const handle = Object.hasOwn(handlers, message?.type) ? handlers[message.type] : null;
  if (handle) handle(message);
});

// -- what the person does -----------------------------------------------------

const params = new URLSearchParams(location.search);
roomInput.value = params.get("room") || roomInput.value;
nameInput.value = localStorage.getItem("chat-name") || "";

joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setNotice("");
  const who = { name: nameInput.value.trim(), room: roomInput.value.trim().toLowerCase() };
  clearRoom();
  wanted = who;
  // Offline, the hello sends it once the connection is back.
  if (client.state === "online") client.send(joinRequest(who));
});

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const request = parseInput(messageInput.value.trim());
  if (request === null) return;
  if (typeof request === "string") {
    setNotice(request); // Refused here; the text stays in the input to fix.
    return;
  }
  setNotice("");
  client.send(request); // Queued while reconnecting; sent after the rejoin.
  messageInput.value = "";
});

leaveButton.addEventListener("click", () => {
  client.send({ type: "leave" });
});

online.addEventListener("click", (event) => {
  const user = event.target.closest("li");
  if (!user || user.textContent === joined?.name) return;
  messageInput.value = `/msg ${user.textContent} `;
  messageInput.focus();
});

/** The request for what was typed, a notice (a string) if it is refused, or null. */
function parseInput(text) {
  if (text === "") return null;
  if (text.startsWith("/") && !text.startsWith("//")) {
    const command = text.split(/\s/, 1)[0];
    if (command !== "/msg") return `Unknown command ${command}: try /msg NAME TEXT.`;
    const match = /^\/msg\s+(\S+)\s+(.+)$/s.exec(text);
    if (match === null) return "Write /msg NAME TEXT to send a private message.";
    return tooLong(match[2]) ?? { type: "private", to: match[1], text: match[2] };
  }
  const body = text.startsWith("//") ? text.slice(1) : text; // "//" sends a leading "/".
  return tooLong(body) ?? { type: "message", text: body };
}

function tooLong(text) {
  const length = [...text].length; // Characters, as the server counts them.
  if (length <= maxLength) return null;
  return `Messages are at most ${maxLength} characters; this one has ${length}.`;
}

// -- the page -----------------------------------------------------------------

function setNotice(text) {
  notice.textContent = text;
}

function clearMessages() {
  messages.replaceChildren();
  shown.clear();
  arrived = null;
}

function clearRoom() {
  clearMessages();
  listed = false;
  online.replaceChildren();
  byId("count").textContent = "";
}

function leaveRoom() {
  joined = null;
  wanted = null;
  clearRoom();
  byId("room-title").textContent = "";
  byId("me").textContent = "";
  roomView.hidden = true;
  joinForm.hidden = false;
  leaveButton.hidden = true;
}

/** A public message, in id order (two workers may deliver two messages out of order). */
function showPublic(message) {
  if (shown.has(message.id)) return;
  shown.add(message.id);
  const item = messageItem(message);
  item.dataset.id = String(message.id);
  let after = messages.lastElementChild;
  while (after && after.dataset.id && Number(after.dataset.id) > message.id) {
    after = after.previousElementSibling;
  }
  append(item, after);
}

function showPrivate(message) {
  const item = messageItem(message);
  item.dataset.private = "true";
  append(item, messages.lastElementChild);
}

function messageItem({ from, to, text, at }) {
  const item = document.createElement("li");
  item.dataset.testid = "msg";
  item.dataset.from = from;
  if (from === joined?.name) item.classList.add("mine");

  const meta = document.createElement("div");
  meta.className = "meta";
  const sender = document.createElement("b");
  sender.className = "from";
  sender.textContent = from;
  sender.style.setProperty("--hue", String(hueOf(from)));
  meta.append(sender);
  if (to !== undefined) {
    const where = document.createElement("span");
    where.className = "private";
    where.textContent = `to ${to}, privately`;
    meta.append(" ", where);
  }
  const time = document.createElement("time");
  const date = new Date(at * 1000);
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(" ", time);

  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  item.append(meta, body);
  return item;
}

function append(item, after) {
  const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
  if (after) after.after(item);
  else messages.prepend(item);
  if (atBottom || item.classList.contains("mine")) messages.scrollTop = messages.scrollHeight;
}

function showOnline(users) {
  const items = users.map((name) => {
    const item = document.createElement("li");
    item.dataset.testid = "user";
    item.style.setProperty("--hue", String(hueOf(name)));
    if (name === joined?.name) {
      item.classList.add("me");
      item.textContent = name;
    } else {
      const button = document.createElement("button"); // Reachable with the keyboard too.
      button.type = "button";
      button.title = `Send ${name} a private message`;
      button.textContent = name;
      item.append(button);
    }
    return item;
  });
  online.replaceChildren(...items);
  byId("count").textContent = String(users.length);
}

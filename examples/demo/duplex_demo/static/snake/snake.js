/**
 * The snake page: draws what the server says, and tells the server where the
 * player wants to go. Nothing else.
 *
 * The page decides nothing about the game: not where the snakes are, not who
 * died, not the score. It sends two kinds of message, `play` and `turn`, and
 * shows the `state` the server broadcasts every tick. The DOM is built with
 * createElement and textContent, never innerHTML: names come from other players.
 * Elements are found by id, and form fields by name; the data-testid attributes
 * of the template and of the items made here are for the tests only.
 *
 * Messages from the server:
 *   welcome     {id, worker, room} this connection's id, the server process's pid, the
 *                                  room whose game the page shows (the shared one)
 *   leaderboard {version, entries} the ten best; a higher version is newer
 *   joined      {room}             the room this page now plays in, and shows
 *   state       {room, pid, tick, width, height, players, food}  one per tick
 *   error       {code, message, request}  a message of ours was refused
 *
 * The canvas has no DOM to read, so the board's data attributes say what it
 * shows: the worker that serves the page, the process that runs the loop, the
 * tick, how many snakes are alive, and where this page's own snake heads.
 */

import { connect } from "flask-duplex";
import { hueOf } from "../colors.js";

const KEYS = {
  ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right",
  w: "up", s: "down", a: "left", d: "right",
  W: "up", S: "down", A: "left", D: "right",
};
const SWIPE_PX = 24;

const byId = (id) => document.getElementById(id);
const root = byId("snake");
const form = byId("snake-join");
const nameInput = form.elements.name;
const playButton = byId("snake-play");
const board = byId("snake-board");
const statusOut = byId("snake-status");
const scoreOut = byId("snake-score");
const playersList = byId("snake-players");
const leaderboardList = byId("snake-leaderboard");
const link = byId("snake-link");
const errorLine = byId("snake-error");

const page = {
  id: null, // our connection id, from welcome
  room: null, // the room whose game we show (and play in, once we play)
  status: "waiting",
  lastPlay: null, // the last play message, sent again after a reconnect while playing
  leaderboardVersion: -1,
  state: null, // the last state of our room
};

nameInput.value = localStorage.getItem("snake-name") || "";

const client = connect(root.dataset.socket, {
  // After a drop, a page that was playing starts a new game on whichever worker it reached.
  hello: () => (page.status === "playing" ? page.lastPlay : null),
});
const showLink = () => { link.textContent = client.state; link.dataset.state = client.state; };
showLink();
client.on("state", showLink);

client.on("message", (message) => {
  switch (message.type) {
    case "welcome": // on every (re)connect: a new connection, that shows a game, plays none
      page.id = message.id;
      page.room = message.room;
      page.leaderboardVersion = -1; // a restarted server may have a fresh database
      board.dataset.worker = String(message.worker);
      if (page.status !== "playing") { // (a page that was playing sent play again: hello)
        page.state = null;
        showPlayers([]);
        draw();
      }
      break;
    case "joined":
      page.room = message.room;
      break;
    case "leaderboard":
      if (message.version >= page.leaderboardVersion) {
        page.leaderboardVersion = message.version;
        showLeaderboard(message.entries);
      }
      break;
    case "state":
      if (message.room === page.room) showState(message);
      break;
    case "error":
      showError(message.message);
      break;
  }
});

// -- playing ---------------------------------------------------------------

function play(mode) {
  if (!nameInput.reportValidity()) return;
  const name = nameInput.value.trim();
  localStorage.setItem("snake-name", name);
  page.lastPlay = { type: "play", name, mode };
  client.send(page.lastPlay);
  nameInput.blur(); // the arrow keys steer from now on
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  play("multi");
});
byId("snake-solo").addEventListener("click", () => play("solo"));

function turn(direction) {
  if (page.status === "playing") client.send({ type: "turn", direction });
}

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) {
    return; // typing a name, not steering
  }
  const direction = KEYS[event.key];
  if (!direction || event.ctrlKey || event.metaKey || event.altKey) return;
  event.preventDefault(); // no scrolling with the arrows
  if (!event.repeat) turn(direction);
});

for (const button of root.querySelectorAll(".snake-pad button")) {
  button.addEventListener("click", () => turn(button.dataset.direction));
}

let swipeStart = null;
board.addEventListener("pointerdown", (event) => {
  swipeStart = { x: event.clientX, y: event.clientY };
});
board.addEventListener("pointerup", (event) => {
  if (!swipeStart) return;
  const dx = event.clientX - swipeStart.x;
  const dy = event.clientY - swipeStart.y;
  swipeStart = null;
  if (Math.max(Math.abs(dx), Math.abs(dy)) < SWIPE_PX) return;
  if (Math.abs(dx) > Math.abs(dy)) turn(dx > 0 ? "right" : "left");
  else turn(dy > 0 ? "down" : "up");
});
board.addEventListener("pointercancel", () => { swipeStart = null; });

// -- showing ---------------------------------------------------------------

function showState(state) {
  page.state = state;
  const me = state.players.find((player) => player.id === page.id);
  if (me) {
    page.status = me.alive ? "playing" : "dead";
    scoreOut.textContent = String(me.score);
  }
  statusOut.textContent = page.status;
  playButton.textContent = page.status === "dead" ? "Play again" : "Play";
  board.dataset.loop = String(state.pid);
  board.dataset.tick = String(state.tick);
  board.dataset.snakes = String(state.players.filter((player) => player.alive).length);
  board.dataset.heading = headingOf(me);
  showPlayers(state.players);
  draw();
}

/** Where a living snake heads, from its head and the cell behind it; "" for none. */
function headingOf(player) {
  const body = player?.alive ? player.body : [];
  if (body.length < 4) return "";
  const [x0, y0, x1, y1] = body;
  return x0 > x1 ? "right" : x0 < x1 ? "left" : y0 > y1 ? "down" : "up";
}

function showPlayers(players) {
  const items = players.map((player) => {
    const item = document.createElement("li");
    item.classList.toggle("dead", !player.alive);
    item.classList.toggle("me", player.id === page.id);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colorOf(player.id);
    const name = document.createElement("span");
    name.className = "name";
    name.dataset.testid = "player";
    name.textContent = player.name;
    const score = document.createElement("span");
    score.className = "points";
    score.textContent = String(player.score);
    item.append(swatch, name, score);
    return item;
  });
  playersList.replaceChildren(...items);
}

function showLeaderboard(entries) {
  const myName = nameInput.value.trim();
  const items = entries.map((entry) => {
    const item = document.createElement("li");
    item.dataset.testid = "entry";
    item.dataset.name = entry.name;
    item.dataset.score = String(entry.score);
    item.classList.toggle("me", entry.name === myName);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.name;
    const score = document.createElement("span");
    score.className = "points";
    score.textContent = String(entry.score);
    item.append(name, score);
    return item;
  });
  leaderboardList.replaceChildren(...items);
}

let errorTimer = 0;
function showError(text) {
  errorLine.textContent = text;
  errorLine.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { errorLine.hidden = true; }, 4000);
}

// -- the board ---------------------------------------------------------------

const context = board.getContext("2d");

function draw() {
  const width = page.state ? page.state.width : Number(board.dataset.width);
  const height = page.state ? page.state.height : Number(board.dataset.height);
  // One cell is a whole number of device pixels: crisp at any size.
  const scale = window.devicePixelRatio || 1;
  const cell = Math.max(4, Math.floor((board.clientWidth * scale) / width));
  if (board.width !== cell * width || board.height !== cell * height) {
    board.width = cell * width;
    board.height = cell * height;
  }
  context.fillStyle = "#10151f";
  context.fillRect(0, 0, board.width, board.height);
  context.fillStyle = "#161d2a";
  for (let x = 0; x < width; x += 1) {
    for (let y = (x % 2); y < height; y += 2) context.fillRect(x * cell, y * cell, cell, cell);
  }
  if (page.state) drawGame(cell);
  if (page.status !== "playing") {
    const text = page.status === "dead" ? "Game over: press Play again" : "Enter a name, press Play";
    context.fillStyle = "rgb(16 21 31 / 70%)";
    context.fillRect(0, board.height / 2 - cell * 2.2, board.width, cell * 4.4);
    context.font = `bold ${Math.max(14, Math.round(cell * 1.4))}px sans-serif`;
    context.textAlign = "center";
    context.textBaseline = "middle";
    context.fillStyle = "#ffffff";
    context.fillText(text, board.width / 2, board.height / 2);
    context.textBaseline = "alphabetic";
  }
}

function drawGame(cell) {
  const { food, players } = page.state;
  context.fillStyle = "#ff5d5d";
  for (let i = 0; i < food.length; i += 2) {
    context.beginPath();
    context.arc((food[i] + 0.5) * cell, (food[i + 1] + 0.5) * cell, cell * 0.36, 0, 2 * Math.PI);
    context.fill();
  }

  const alive = players.filter((player) => player.alive && player.body.length);
  const inset = Math.max(1, Math.round(cell * 0.08));
  for (const { id, body } of alive) {
    const color = colorOf(id);
    context.fillStyle = color;
    for (let i = body.length - 2; i >= 2; i -= 2) {
      context.fillRect(body[i] * cell + inset, body[i + 1] * cell + inset,
                       cell - 2 * inset, cell - 2 * inset);
    }
    // The head: the snake's color, ringed in white.
    context.fillStyle = "#ffffff";
    context.fillRect(body[0] * cell + inset, body[1] * cell + inset,
                     cell - 2 * inset, cell - 2 * inset);
    context.fillStyle = color;
    context.fillRect(body[0] * cell + 2 * inset, body[1] * cell + 2 * inset,
                     cell - 4 * inset, cell - 4 * inset);
  }

  // Names over the heads, after every body, with a dark rim: readable over any snake.
  context.textAlign = "center";
  context.lineWidth = Math.max(2, cell * 0.2);
  context.strokeStyle = "#10151f";
  context.fillStyle = "#ffffff";
  for (const { id, name, body } of alive) {
    const mine = id === page.id;
    context.font = `${mine ? "bold " : ""}${Math.max(11, Math.round(cell * 0.9))}px sans-serif`;
    const label = mine ? `${name} (you)` : name;
    const half = context.measureText(label).width / 2 + 2;
    const x = Math.min(Math.max((body[0] + 0.5) * cell, half), board.width - half);
    const y = body[1] > 1 ? body[1] * cell - cell * 0.3 : (body[1] + 2) * cell;
    context.strokeText(label, x, y);
    context.fillText(label, x, y);
  }
}

new ResizeObserver(draw).observe(board);
draw();

/** A steady, bright color per player id. */
function colorOf(id) {
  return `hsl(${hueOf(id)}deg 75% 58%)`;
}

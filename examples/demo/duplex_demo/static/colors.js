// Colours for names and players, the same on every page and for every visitor:
// the chat colours each name, the snake game each player's snake.

/** A hue, 0 to 359, for a string: the same string always gets the same hue. */
export function hueOf(text) {
  let hash = 0;
  for (const char of String(text)) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

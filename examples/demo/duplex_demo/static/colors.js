// Colours for names and players, the same on every page and for every visitor:
// the chat colours each name, the snake game each player's snake.

/**
 * A hue, 0 to 359, for a string: the same string always gets the same hue, and
 * strings that differ in one character get hues far apart ("bob1" and "bob2",
 * or two connection ids of one server process, which differ in their last digits).
 */
export function hueOf(text) {
  let hash = 2166136261; // FNV-1a over the characters...
  for (const char of String(text)) hash = Math.imul(hash ^ char.codePointAt(0), 16777619);
  hash = Math.imul(hash ^ (hash >>> 16), 0x45d9f3b); // ...then mixed, so that a change
  hash ^= hash >>> 16; // in the last character moves every bit.
  return (hash >>> 0) % 360;
}

-- The demo's tables. CREATE ... IF NOT EXISTS: running it again keeps the data.

-- Public chat messages, the last ones of each room shown on join.
CREATE TABLE IF NOT EXISTS chat_message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_message_by_room ON chat_message (room, id);

-- One row per finished snake game; the leaderboard is the best per name.
CREATE TABLE IF NOT EXISTS snake_score (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    score INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snake_score_by_name ON snake_score (name, score);

-- Replication-slot health (lib/replication-slots.ts). PostgreSQL before 17 does not say since when a slot has been
-- inactive: the leader records when it first saw each of EchoDB's slots inactive (NULL while active), and forgets a
-- slot once it is gone.
CREATE TABLE IF NOT EXISTS echodb.slot_observations (
  slot_name      text PRIMARY KEY,
  inactive_since timestamptz,
  observed_at    timestamptz NOT NULL
);

-- What `echodb slots --drop-orphans` dropped: a slot or publication of a mirror EchoDB had dropped, by whom and
-- when, with the WAL the slot held. Kept for good (a few rows a year).
CREATE TABLE IF NOT EXISTS echodb.dropped_orphans (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind               text NOT NULL CHECK (kind IN ('slot', 'publication')),
  name               text NOT NULL,
  mirror             text NOT NULL,
  reason             text NOT NULL,
  retained_wal_bytes bigint,
  dropped_by         text NOT NULL,
  dropped_at         timestamptz NOT NULL DEFAULT now()
);

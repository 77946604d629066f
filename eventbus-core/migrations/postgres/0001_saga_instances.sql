-- Saga instances: one row per (saga, key). Idempotent: safe to apply at every start.
CREATE TABLE IF NOT EXISTS eventbus_saga_instances (
    saga       text        NOT NULL,
    key        text        NOT NULL,
    state      jsonb       NOT NULL,
    -- Bumped by every commit; a commit writes only over the version its step read.
    version    bigint      NOT NULL,
    status     text        NOT NULL CHECK (status IN ('running', 'completed', 'compensated')),
    reason     text,
    -- The events the instance processed: a redelivered event is recognised by its id.
    processed  uuid[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (saga, key)
);

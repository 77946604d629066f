-- What saga steps published and scheduled, committed with their state; a relay delivers
-- what its committing process did not (a crash between commit and publish) and what is due.
CREATE TABLE IF NOT EXISTS eventbus_saga_outbox (
    id         uuid        PRIMARY KEY,
    saga       text        NOT NULL,
    key        text        NOT NULL,
    -- The event as a CloudEvent (JSON, structured mode).
    payload    text        NOT NULL,
    -- Due then; a claim moves it past the claimer's lease.
    deliver_at timestamptz NOT NULL,
    scheduled  boolean     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS eventbus_saga_outbox_due ON eventbus_saga_outbox (deliver_at);
CREATE INDEX IF NOT EXISTS eventbus_saga_outbox_instance ON eventbus_saga_outbox (saga, key);

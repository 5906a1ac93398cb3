-- The send queue is read a page at a time (as migrations/sqlite/0009_queue_pages.sql).
CREATE INDEX messages_queue_by_pool ON messages (tenant_id, pool, created_at, id)
    WHERE status = 'queued' AND forced = FALSE;
CREATE INDEX messages_queue_by_number ON messages (instance_id, created_at, id)
    WHERE status = 'queued' AND forced = TRUE;

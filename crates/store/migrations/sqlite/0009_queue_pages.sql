-- The send queue is read a page at a time, in accept order after a position: a pool's queue
-- and one number's forced sends, each from its own index that holds queued messages only
-- (the queries repeat these WHERE terms word for word, so SQLite picks them).
CREATE INDEX messages_queue_by_pool ON messages (tenant_id, pool, created_at, id)
    WHERE status = 'queued' AND forced = FALSE;
CREATE INDEX messages_queue_by_number ON messages (instance_id, created_at, id)
    WHERE status = 'queued' AND forced = TRUE;

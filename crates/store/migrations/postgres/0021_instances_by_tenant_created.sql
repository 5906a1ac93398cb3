-- `GET /v1/instances?limit=&cursor=` reads a tenant's numbers a page at a time in the order of
-- the whole list (created_at, id): one index range per page, not a sort of 10,000 rows.
CREATE INDEX instances_by_tenant_created ON instances (tenant_id, created_at, id);

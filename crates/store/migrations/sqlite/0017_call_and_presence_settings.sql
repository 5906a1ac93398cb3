-- Issue 20: how a number answers calls and shows itself online.
-- `reject_calls`: an incoming call is rejected at once (0: it rings, as before);
-- `reject_call_message`: the text sent to the caller after a rejection (NULL: none);
-- `always_online`: the number announces itself `available` at every connect.
ALTER TABLE instances ADD COLUMN reject_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN reject_call_message TEXT;
ALTER TABLE instances ADD COLUMN always_online INTEGER NOT NULL DEFAULT 0;

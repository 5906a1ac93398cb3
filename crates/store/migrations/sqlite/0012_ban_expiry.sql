-- When a number's temporary ban ends (milliseconds), while it is banned for a time: whichever
-- node holds the number connects it again then, after a restart too. Any other state change,
-- or an operator's command, clears it.
ALTER TABLE instances ADD COLUMN ban_until INTEGER;

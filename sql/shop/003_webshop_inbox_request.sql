--  webshop: the inbox remembers a hash of the request it answered (so a
--  reused key with another body is refused with 422 instead of replayed),
--  the correlation id of the first delivery, and when it was applied.
ALTER TABLE shop.inbox
    ADD COLUMN request_sha256 text,
    ADD COLUMN correlation_id text,
    ADD COLUMN processed_at timestamptz;
COMMENT ON COLUMN shop.inbox.request_sha256 IS
    'SHA-256 (hex) of the canonical JSON body first received with this key';

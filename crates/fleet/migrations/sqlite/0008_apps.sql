-- Apps (issue #22): an app key belongs to an app, a device to the app of
-- the key it registered with (it is offered only that app's releases; a
-- release names its app in its metadata JSON), and an API token may be
-- scoped to apps. Everything before this migration is the app 'default'.

ALTER TABLE app_keys ADD COLUMN app TEXT NOT NULL DEFAULT 'default';
ALTER TABLE devices ADD COLUMN app TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_tokens ADD COLUMN apps TEXT;  -- JSON list; NULL: every app

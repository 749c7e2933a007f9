-- Device public keys (X25519, standard base64), for wrapping the content
-- keys of sealed models to one device (issue #23). NULL for devices that
-- registered without one (agents before sealed models).

ALTER TABLE devices ADD COLUMN public_key TEXT;

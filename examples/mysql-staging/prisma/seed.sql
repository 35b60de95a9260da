-- Staging demo data. Idempotent: every replica runs the seed (one at a time,
-- under the lock), so a second run must change nothing.
INSERT IGNORE INTO `Product` (`sku`, `name`) VALUES
  ('DEMO-001', 'Demo mug'),
  ('DEMO-002', 'Demo T-shirt'),
  ('DEMO-003', 'Demo sticker pack');

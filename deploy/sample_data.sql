-- A small sample data set. Users are inserted first so that they take ids
-- 1..10 from all_id_seq: the notebook's example loads users [1, 2, 3, 4, 4].
INSERT INTO users (name, surname, email, "externalId") VALUES
  ('Leslie', 'Cannon', 'leslie.cannon@university.world', 1001),
  ('Cathy', 'Hickman', 'cathy.hickman@university.world', 1002),
  ('Rene', 'Fowler', 'rene.fowler@university.world', 1003),
  ('Nora', 'Briggs', 'nora.briggs@university.world', 1004),
  ('Oscar', 'Lamb', 'oscar.lamb@university.world', 1005),
  ('Maya', 'Stone', 'maya.stone@university.world', 1006),
  ('Ivan', 'Novak', 'ivan.novak@university.world', 1007),
  ('Petra', 'Dvorak', 'petra.dvorak@university.world', 1008),
  ('Hugo', 'Marsh', 'hugo.marsh@university.world', 1009),
  ('Alma', 'Reyes', 'alma.reyes@university.world', 1010);

INSERT INTO grouptypes (name) VALUES ('faculty'), ('department');   -- 11, 12

INSERT INTO groups (name, "entryYearId", "externalId", grouptype_id) VALUES
  ('Faculty of Science', NULL, 'FS', 11),          -- 13
  ('Faculty of Arts', NULL, 'FA', 11),             -- 14
  ('Department of Physics', 2020, 'FS-PHY', 12),   -- 15
  ('Department of History', 2021, 'FA-HIS', 12);   -- 16

INSERT INTO users_groups (user_id, group_id) VALUES
  (1, 13), (1, 15), (2, 13), (3, 14), (3, 16), (4, 15), (5, 16), (6, 13);

-- rowgate's demo schema: the notebook's SQLAlchemy models (users, groups,
-- grouptypes and the users_groups M:N link), database first.
--
-- Every id comes from one shared sequence, all_id_seq, as in the notebook,
-- and users_groups' primary key is the notebook's triple (id, user_id,
-- group_id): rowgate serves composite keys (README "Composite keys").
-- lastchange holds UTC wall-clock time (timestamp without time zone, like
-- the notebook's DateTime) and is rowgate's optimistic-concurrency version.

CREATE SEQUENCE all_id_seq;

CREATE TABLE grouptypes (
  id bigint PRIMARY KEY DEFAULT nextval('all_id_seq'),
  name varchar
);

CREATE TABLE users (
  id bigint PRIMARY KEY DEFAULT nextval('all_id_seq'),
  name varchar,
  surname varchar,
  email varchar,
  lastchange timestamp DEFAULT timezone('UTC', now()),
  "externalId" bigint
);
CREATE INDEX users_externalid_idx ON users ("externalId");

CREATE TABLE groups (
  id bigint PRIMARY KEY DEFAULT nextval('all_id_seq'),
  name varchar,
  lastchange timestamp DEFAULT timezone('UTC', now()),
  "entryYearId" integer,
  "externalId" varchar,
  grouptype_id bigint REFERENCES grouptypes (id)
);
CREATE INDEX groups_externalid_idx ON groups ("externalId");
CREATE INDEX groups_grouptype_id_idx ON groups (grouptype_id);

CREATE TABLE users_groups (
  id bigint DEFAULT nextval('all_id_seq'),
  user_id bigint REFERENCES users (id) ON DELETE CASCADE,
  group_id bigint REFERENCES groups (id) ON DELETE CASCADE,
  PRIMARY KEY (id, user_id, group_id)
);
CREATE INDEX users_groups_user_id_idx ON users_groups (user_id);
CREATE INDEX users_groups_group_id_idx ON users_groups (group_id);

CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

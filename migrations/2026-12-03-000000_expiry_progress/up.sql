-- How far maintenance has expired the identities of a day it detached and has not dropped yet:
-- the next page of that table to read. Written by the statement that expires each batch, so a
-- run stopped in between (its task's timeout, a deploy) is resumed there by the next, rather
-- than looking up again every key it already expired. The row goes with the table's drop.
CREATE TABLE expiry_progress (
    table_name text   PRIMARY KEY,
    next_page  bigint NOT NULL
);

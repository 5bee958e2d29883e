-- The admin calls filter finds a number by its end (`1234567` finds +375291234567): reverse(phone) LIKE
-- '7654321%' is a range scan of this index instead of a sequential scan of calls with LIKE '%1234567'.
CREATE INDEX calls_enterprise_phone_reversed ON calls (enterprise_number, reverse(phone) text_pattern_ops);

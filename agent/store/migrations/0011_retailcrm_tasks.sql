-- Call-back tasks made in RetailCRM for missed calls, per caller (as amocrm_missed_tasks): a repeat missed call
-- adds none while one is open; an answered call with the number completes it. Task id 0 is a task being sent,
-- -1 the time the number was last reached (connectors/missed_tasks.py).
CREATE TABLE retailcrm_missed_tasks (
    enterprise_number text NOT NULL,
    phone             text NOT NULL,
    task_id           bigint NOT NULL,
    call_id           text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enterprise_number, phone, task_id)
);

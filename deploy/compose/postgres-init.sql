-- Run once, when the compose stack's PostgreSQL volume is first created: besides the payment
-- service's database (POSTGRES_DB), one for the sandbox PSP, which every API replica serves
-- under /sandbox and so must share, and one for the reference platform.
CREATE DATABASE sandbox;
CREATE DATABASE platform;

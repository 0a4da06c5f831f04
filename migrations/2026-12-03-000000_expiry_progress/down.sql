DROP TABLE expiry_progress;

-- Creates view device_last_heartbeat: per device and day, when it was last heard from (any event) and its last heartbeat, fps and counters (for QuickSight)
-- last_heartbeat and last_seen are tz-free for the same reason as in view_mask_compliance_hourly.sql.
-- Last seen is judged on ingest_ts (stamped by the IoT rule's timestamp() on arrival), not on ts (the device's
-- clock): a clock behind would make a live device look silent forever, one ahead would hide a dead one. Inference
-- events count as signs of life too, so a device whose heartbeats are off is still seen. The heartbeat columns
-- come from heartbeats only (null on a day with inference events only).
CREATE OR REPLACE VIEW ${database}.device_last_heartbeat AS
SELECT dt,
       device_id,
       max(CASE WHEN event_type = 'heartbeat' THEN ts END) AS last_heartbeat_ts,
       date_add('millisecond', max(CASE WHEN event_type = 'heartbeat' THEN ts END) % 86400000,
                date_add('day', max(CASE WHEN event_type = 'heartbeat' THEN ts END) / 86400000,
                         TIMESTAMP '1970-01-01 00:00:00.000')) AS last_heartbeat,
       max(ingest_ts) AS last_seen_ms,
       date_add('millisecond', max(ingest_ts) % 86400000,
                date_add('day', max(ingest_ts) / 86400000, TIMESTAMP '1970-01-01 00:00:00.000')) AS last_seen,
       max_by(fps, CASE WHEN event_type = 'heartbeat' THEN ts END) AS fps,
       max(frames) AS frames,
       max(errors) AS errors,
       max(dropped) AS dropped
FROM ${database}.inference_results
WHERE event_type IN ('heartbeat', 'inference')
GROUP BY dt, device_id

-- Creates view device_last_heartbeat: last heartbeat, fps and counters per device and day (for QuickSight)
-- last_heartbeat is tz-free for the same reason as in view_mask_compliance_hourly.sql.
CREATE OR REPLACE VIEW ${database}.device_last_heartbeat AS
SELECT dt,
       device_id,
       max(ts) AS last_heartbeat_ts,
       date_add('millisecond', max(ts) % 86400000,
                date_add('day', max(ts) / 86400000, TIMESTAMP '1970-01-01 00:00:00.000')) AS last_heartbeat,
       max_by(fps, ts) AS fps,
       max(frames) AS frames,
       max(errors) AS errors,
       max(dropped) AS dropped
FROM ${database}.inference_results
WHERE event_type = 'heartbeat'
GROUP BY dt, device_id

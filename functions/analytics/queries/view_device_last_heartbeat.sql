-- Creates view device_last_heartbeat: last heartbeat, fps and counters per device and day (for QuickSight)
CREATE OR REPLACE VIEW ${database}.device_last_heartbeat AS
SELECT dt,
       device_id,
       max(ts) AS last_heartbeat_ts,
       from_unixtime(max(ts) / 1e3) AS last_heartbeat,
       max_by(fps, ts) AS fps,
       max(frames) AS frames,
       max(errors) AS errors,
       max(dropped) AS dropped
FROM ${database}.inference_results
WHERE event_type = 'heartbeat'
GROUP BY dt, device_id

-- Devices whose last heartbeat is older than ${silent_minutes} minutes (devices heard from in the last ${lookback_days} days)
-- param: silent_minutes=30
-- param: lookback_days=7
SELECT device_id,
       from_unixtime(max(ts) / 1e3) AS last_heartbeat,
       CAST(floor((to_unixtime(current_timestamp) * 1e3 - max(ts)) / 60e3) AS bigint) AS minutes_silent
FROM ${database}.inference_results
WHERE dt > date_format(current_date - INTERVAL '${lookback_days}' DAY, '%Y-%m-%d')
  AND event_type = 'heartbeat'
GROUP BY device_id
HAVING max(ts) < to_unixtime(current_timestamp - INTERVAL '${silent_minutes}' MINUTE) * 1000
ORDER BY last_heartbeat, device_id

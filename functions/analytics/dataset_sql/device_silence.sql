-- Devices heard from in the last ${lookback_days} days: when last heard from (any event, arrival time, UTC, tz-free) and whole minutes since (QuickSight dataset device-silence)
-- param: lookback_days=7
-- Custom SQL of a QuickSight dataset, not a named query: minutes_silent is computed when QuickSight runs it (each
-- visual in DIRECT_QUERY mode, each refresh in SPICE mode). Reads the view device_last_heartbeat (one row per device
-- and day), so last_seen carries no time zone. Last seen is the arrival time (ingest_ts, the IoT rule's clock),
-- as in the alerts' named query silent_devices; dt (the device's day) only prunes partitions.
SELECT device_id,
       max(last_seen) AS last_seen,
       CAST(floor(greatest(0, to_unixtime(current_timestamp) * 1e3 - max(last_seen_ms)) / 60e3) AS bigint)
           AS minutes_silent
FROM ${database}.device_last_heartbeat
WHERE dt > date_format(current_date - INTERVAL '${lookback_days}' DAY, '%Y-%m-%d')
GROUP BY device_id

-- Creates view mask_compliance_hourly: faces, masked, unmasked and compliance per device and UTC hour (for QuickSight)
CREATE OR REPLACE VIEW ${database}.mask_compliance_hourly AS
SELECT dt,
       device_id,
       date_trunc('hour', from_unixtime(ts / 1e3)) AS hour,
       count(*) AS frames,
       sum(faces) AS faces,
       sum(masked) AS masked,
       sum(unmasked) AS unmasked,
       CAST(sum(masked) AS double) / nullif(sum(faces), 0) AS compliance_rate
FROM ${database}.inference_results
WHERE event_type = 'inference'
GROUP BY dt, device_id, date_trunc('hour', from_unixtime(ts / 1e3))

-- Creates view mask_compliance_hourly: faces, masked, unmasked, unknown and compliance per device and UTC hour (for QuickSight)
-- Compliance is the masked share of the faces the classifier was sure of: faces labelled unknown (top probability
-- below the device's threshold; null in events from before that label) count in neither masked nor unmasked.
-- Athena refuses `timestamp with time zone` (what from_unixtime returns) as a view column: the hour is built
-- tz-free from ts (epoch ms) as whole days + milliseconds of the day, because date_add's amount must fit an int
-- (ts does not) and a timestamp(3) start keeps the milliseconds (timestamp(0) would round them to seconds).
CREATE OR REPLACE VIEW ${database}.mask_compliance_hourly AS
SELECT dt,
       device_id,
       date_trunc('hour', date_add('millisecond', ts % 86400000,
                                   date_add('day', ts / 86400000, TIMESTAMP '1970-01-01 00:00:00.000'))) AS hour,
       count(*) AS frames,
       sum(faces) AS faces,
       sum(masked) AS masked,
       sum(unmasked) AS unmasked,
       sum(coalesce(inference_results.unknown, 0)) AS unknown,
       CAST(sum(masked) AS double) / nullif(sum(masked) + sum(unmasked), 0) AS compliance_rate
FROM ${database}.inference_results
WHERE event_type = 'inference'
GROUP BY 1, 2, 3

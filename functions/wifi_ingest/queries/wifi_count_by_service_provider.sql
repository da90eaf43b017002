-- Free public Wi-Fi installations per service provider in each city (seed chart "시도별 와이파이 서비스 제공업체")
SELECT city, service_provider, count(*) AS installations
FROM ${database}.free_wifi_standard_data
GROUP BY city, service_provider
ORDER BY city, installations DESC, service_provider

-- wrk's summary as lines the nginx workload's regexes read: the request rate and the latency
-- percentiles (wrk's --latency prints no p99.9), latencies in microseconds.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("wrk_requests_s %.2f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("wrk_p50_us %d\nwrk_p99_us %d\nwrk_p999_us %d\n",
                         latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
  io.write(string.format("wrk_errors %d\n", errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end

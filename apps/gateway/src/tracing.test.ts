import { describe, expect, it } from "vitest";
import { parseEnv } from "./env.ts";
import { tracingSettings } from "./tracing.ts";

const settings = (vars: Record<string, string>) => tracingSettings(parseEnv(vars));

describe("tracingSettings (the standard OTEL_* variables)", () => {
  it("is off by default, with OTEL_TRACES_EXPORTER=none and with OTEL_SDK_DISABLED=true", () => {
    expect(settings({})).toBeUndefined();
    expect(settings({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toBeUndefined();
    expect(settings({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" })).toBeUndefined();
    // Only the exporter-less variables: still off.
    expect(settings({ OTEL_SERVICE_NAME: "cs", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toBeUndefined();
  });

  it("is on with an OTLP endpoint or a named exporter; http/protobuf unless told otherwise", () => {
    expect(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toMatchObject({ exporters: ["otlp"], protocol: "http/protobuf" });
    expect(settings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).toMatchObject({
      exporters: ["otlp"],
      protocol: "http/json",
    });
    expect(
      settings({ OTEL_TRACES_EXPORTER: "otlp, console", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" }),
    ).toMatchObject({
      exporters: ["otlp", "console"],
      protocol: "http/json",
    });
    expect(
      settings({ OTEL_SDK_DISABLED: "false", OTEL_TRACES_EXPORTER: "console", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25" }),
    ).toMatchObject({
      exporters: ["console"],
      sampler: { name: "traceidratio", ratio: 0.25 },
    });
    expect(settings({ OTEL_TRACES_EXPORTER: "otlp", OTEL_BSP_SCHEDULE_DELAY: "100" })?.batch).toEqual({ scheduledDelayMillis: 100 });
  });

  it("refuses values it cannot honour, naming the variable", () => {
    expect(() => settings({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL.*grpc is not supported/s);
    expect(() => settings({ OTEL_TRACES_EXPORTER: "zipkin" })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => settings({ OTEL_TRACES_SAMPLER_ARG: "2" })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
  });
});

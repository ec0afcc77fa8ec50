package io.intentflow.flink;

import org.apache.flink.api.common.functions.MapFunction;

import java.nio.charset.StandardCharsets;

/**
 * Text values (lines of a replay file, an in-memory collection) to their UTF-8 bytes, the type the
 * micro-batcher reads ({@link RawValueSchema}).
 */
public class Utf8Values implements MapFunction<String, byte[]> {

    private static final long serialVersionUID = 1L;

    @Override
    public byte[] map(String value) {
        return value.getBytes(StandardCharsets.UTF_8);
    }
}

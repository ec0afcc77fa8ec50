package io.intentflow.flink;

import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;

/**
 * The Kafka value as it is: {@code byte[]}, no decoding. The job's source uses it in place of
 * {@code SimpleStringSchema}, so a value is never turned into a Java {@code String} (UTF-8 decode, then
 * char-by-char serialization to the Python operator); the Python side parses the bytes
 * ({@code udfs.contract.parse_event}), where a value that is not valid UTF-8 is cleaned or dead-lettered.
 *
 * <p>A record without a value (a tombstone) becomes an empty array, which the Python parse sends to the
 * DLQ ({@code invalid_json}) instead of failing the job.
 */
public class RawValueSchema implements DeserializationSchema<byte[]> {

    private static final long serialVersionUID = 1L;

    private static final byte[] EMPTY = new byte[0];

    @Override
    public byte[] deserialize(byte[] message) {
        return message == null ? EMPTY : message;
    }

    @Override
    public boolean isEndOfStream(byte[] nextElement) {
        return false;
    }

    @Override
    public TypeInformation<byte[]> getProducedType() {
        return PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
    }
}

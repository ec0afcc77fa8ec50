package io.intentflow.flink;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.zip.CRC32;

/**
 * Buffers raw Kafka values per session shard and emits one element per micro-batch, so that the
 * Python operator after it is called once per batch instead of once per event.
 *
 * <p><b>Shards.</b> A session's shard is {@code crc32(utf8(session_id)) mod numShards} (the same as
 * {@code udfs.partitioning.shard_of}); shard {@code s} has the int key {@code shardKeys[s]}, chosen by
 * {@link #shardKeysCsv} so that the stream's actual key, {@code Row.of(shardKeys[s])}, falls in key group
 * {@code s} (Flink's own {@link KeyGroupRangeAssignment}). The number of shards is the job's pinned max
 * parallelism, which never changes with the parallelism: a session always lands in the same shard, and a
 * rescale moves whole key groups, so every session's keyed state moves with it.
 *
 * <p><b>Input.</b> The raw Kafka values as bytes ({@link RawValueSchema}); no {@code String} is made of a
 * value on the Java side, where decoding it and serializing it to the Python operator char by char
 * ({@code StringValue.writeString}) took half of the source thread's samples (JFR, 5,000 events/s).
 *
 * <p><b>Output.</b> {@code Row(shardKey: Integer, batch: byte[])}, the batch laid out big-endian as
 * <pre>
 *   flags:      1 byte, bit 0 set when the batch is the last one of a flush for its downstream subtask
 *               (so the Python operator can send the Redis writes of a whole flush in one pipeline)
 *   n:          int32, the number of values
 *   timestamps: n x int64, the Kafka record timestamps (epoch ms; {@link #NO_TIMESTAMP} when none)
 *   lengths:    n x int32, the byte length of each value
 *   values:     the raw values, concatenated in arrival order
 * </pre>
 * ({@code udfs.microbatch.decode_batch} reads it). A {@code byte[]} crosses to Python as one {@code bytes}
 * object and over the network edge as one copy. The Row shape is the one PyFlink's {@code KeyByKeySelector}
 * keys on, so the Python side keys the stream without a Python key-selector operator.
 *
 * <p><b>When a batch is emitted.</b> When its shard holds {@code maxBatchSize} values; every shard with
 * values {@code windowMs} after the first value buffered since the last flush (one processing-time
 * timer); before every checkpoint barrier ({@link #prepareSnapshotPreBarrier}), so no value is ever held
 * outside checkpointed state and the operator keeps no state of its own; before the final
 * {@code MAX_WATERMARK} is forwarded and at end of input (bounded replays), so the Python operator sees
 * every value before its end-of-input timer fires.
 */
public class SessionShardMicroBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<byte[], Row>, BoundedOneInput, ProcessingTimeCallback {

    private static final long serialVersionUID = 1L;

    /** Shard of values whose session id cannot be read (the Python parse sends them to the DLQ). */
    static final int UNROUTABLE_SHARD = 0;
    /** Timestamp entry of a record without one. */
    public static final long NO_TIMESTAMP = Long.MIN_VALUE;
    /** Bit of the flags byte: the last batch of a flush for its downstream subtask. */
    public static final int LAST_OF_FLUSH = 1;

    private final int[] shardKeys;
    private final long windowMs;
    private final int maxBatchSize;
    /** Downstream subtask of each shard (the keyed Python operator's parallelism). */
    private final int[] ownerOfShard;

    private transient ArrayList<byte[]>[] values;
    private transient long[][] timestamps;
    private transient int[] bytesBuffered;
    private transient long timerAtMs;
    private transient CRC32 crc;
    private transient Counter batchesOut;
    private transient Counter valuesOut;

    /**
     * One int key per key group: {@code keys[g]} is the smallest non-negative int whose stream key
     * {@code Row.of(int)} (what PyFlink's {@code KeyByKeySelector} keys by) is in key group {@code g}.
     *
     * @param maxParallelism the job's max parallelism (= number of key groups = number of shards)
     * @return the keys, comma-separated, in key-group order
     */
    public static String shardKeysCsv(int maxParallelism) {
        KeyGroupRangeAssignment.checkParallelismPreconditions(maxParallelism);
        int[] keys = new int[maxParallelism];
        java.util.Arrays.fill(keys, -1);
        int found = 0;
        for (int candidate = 0; found < maxParallelism; candidate++) {
            int group = KeyGroupRangeAssignment.assignToKeyGroup(Row.of(candidate), maxParallelism);
            if (keys[group] < 0) {
                keys[group] = candidate;
                found++;
            }
        }
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < keys.length; i++) {
            out.append(i == 0 ? "" : ",").append(keys[i]);
        }
        return out.toString();
    }

    /** As {@link #SessionShardMicroBatcher(String, long, int, int, int)} for one downstream subtask. */
    public SessionShardMicroBatcher(String shardKeysCsv, long windowMs, int maxBatchSize) {
        this(shardKeysCsv, windowMs, maxBatchSize, 1, 1 << 15);
    }

    /**
     * @param shardKeysCsv the int key of each shard, comma-separated (its length is the shard count)
     * @param windowMs flush a shard at most this long (ms) after its first buffered value; 1..60000
     * @param maxBatchSize flush a shard when it holds this many values; >= 1
     * @param downstreamParallelism parallelism of the keyed operator the batches go to
     * @param maxParallelism the job's max parallelism (to find each shard's downstream subtask)
     * @throws IllegalArgumentException on an empty key list or a bound out of range
     */
    public SessionShardMicroBatcher(String shardKeysCsv, long windowMs, int maxBatchSize, int downstreamParallelism,
                                    int maxParallelism) {
        String[] parts = shardKeysCsv.split(",");
        if (shardKeysCsv.isBlank() || parts.length == 0) {
            throw new IllegalArgumentException("at least one shard key is needed");
        }
        if (windowMs < 1 || windowMs > 60_000) {
            throw new IllegalArgumentException("windowMs must be within 1..60000, got " + windowMs);
        }
        if (maxBatchSize < 1) {
            throw new IllegalArgumentException("maxBatchSize must be >= 1, got " + maxBatchSize);
        }
        this.shardKeys = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            this.shardKeys[i] = Integer.parseInt(parts[i].trim());
        }
        this.windowMs = windowMs;
        this.maxBatchSize = maxBatchSize;
        if (downstreamParallelism < 1 || downstreamParallelism > maxParallelism) {
            throw new IllegalArgumentException("downstreamParallelism must be within 1..maxParallelism, got "
                    + downstreamParallelism + " of " + maxParallelism);
        }
        this.ownerOfShard = new int[shardKeys.length];
        for (int i = 0; i < shardKeys.length; i++) {
            ownerOfShard[i] = downstreamParallelism == 1 ? 0 : KeyGroupRangeAssignment.assignKeyToParallelOperator(
                    Row.of(shardKeys[i]), maxParallelism, downstreamParallelism);
        }
    }

    @Override
    @SuppressWarnings("unchecked")
    public void open() throws Exception {
        super.open();
        values = new ArrayList[shardKeys.length];
        timestamps = new long[shardKeys.length][];
        bytesBuffered = new int[shardKeys.length];
        for (int i = 0; i < shardKeys.length; i++) {
            values[i] = new ArrayList<>(Math.min(maxBatchSize, 1024));
            timestamps[i] = new long[Math.min(maxBatchSize, 64)];
        }
        timerAtMs = -1;
        crc = new CRC32();
        batchesOut = getRuntimeContext().getMetricGroup().counter("microBatchesOut");
        valuesOut = getRuntimeContext().getMetricGroup().counter("microBatchValuesOut");
    }

    /** The shard index of a session id given as its UTF-8 bytes: {@code crc32(utf8(id)) mod numShards}. */
    static int shardIndex(byte[] sessionIdUtf8, int numShards, CRC32 crc) {
        if (sessionIdUtf8 == null) {
            return UNROUTABLE_SHARD;
        }
        crc.reset();
        crc.update(sessionIdUtf8);
        return (int) (crc.getValue() % numShards);
    }

    @Override
    public void processElement(StreamRecord<byte[]> element) throws Exception {
        byte[] value = element.getValue();
        if (value == null) {
            value = new byte[0];  // a Kafka tombstone: the Python parse sends it to the DLQ (invalid_json)
        }
        int shard = shardIndex(TopLevelJsonField.utf8Value(value, "session_id"), shardKeys.length, crc);
        ArrayList<byte[]> buffer = values[shard];
        long[] ts = timestamps[shard];
        if (buffer.size() == ts.length) {
            ts = timestamps[shard] = Arrays.copyOf(ts, ts.length * 2);
        }
        ts[buffer.size()] = element.hasTimestamp() ? element.getTimestamp() : NO_TIMESTAMP;
        buffer.add(value);
        bytesBuffered[shard] += value.length;
        if (buffer.size() >= maxBatchSize) {
            emit(shard, true);
        } else if (timerAtMs < 0) {
            timerAtMs = getProcessingTimeService().getCurrentProcessingTime() + windowMs;
            getProcessingTimeService().registerTimer(timerAtMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerAtMs = -1;
        flushAll();
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        if (mark.getTimestamp() == Long.MAX_VALUE) {
            flushAll();
        }
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flushAll();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() {
        flushAll();
    }

    private void flushAll() {
        // the last non-empty shard of each downstream subtask carries the "last of this flush" mark
        int n = values.length;
        int[] lastOfOwner = new int[n];
        java.util.Arrays.fill(lastOfOwner, -1);
        for (int shard = 0; shard < n; shard++) {
            if (!values[shard].isEmpty()) {
                lastOfOwner[ownerOfShard[shard] % n] = shard;
            }
        }
        for (int shard = 0; shard < n; shard++) {
            if (!values[shard].isEmpty()) {
                emit(shard, lastOfOwner[ownerOfShard[shard] % n] == shard);
            }
        }
    }

    private void emit(int shard, boolean lastOfFlush) {
        ArrayList<byte[]> buffer = values[shard];
        int n = buffer.size();
        ByteBuffer batch = ByteBuffer.allocate(5 + 12 * n + bytesBuffered[shard]);  // big-endian
        batch.put((byte) (lastOfFlush ? LAST_OF_FLUSH : 0)).putInt(n);
        long[] ts = timestamps[shard];
        for (int i = 0; i < n; i++) {
            batch.putLong(ts[i]);
        }
        for (int i = 0; i < n; i++) {
            batch.putInt(buffer.get(i).length);
        }
        for (int i = 0; i < n; i++) {
            batch.put(buffer.get(i));
        }
        batchesOut.inc();
        valuesOut.inc(n);
        buffer.clear();
        bytesBuffered[shard] = 0;
        output.collect(new StreamRecord<>(Row.of(shardKeys[shard], batch.array())));
    }

    /**
     * The values of a batch made by this operator (for tests and tools).
     *
     * @param batch the batch bytes (class docs)
     * @return the values in order
     * @throws java.nio.BufferUnderflowException on bytes that are not a batch
     */
    public static java.util.List<byte[]> valuesOf(byte[] batch) {
        ByteBuffer in = ByteBuffer.wrap(batch);
        in.get();
        int n = in.getInt();
        int[] lengths = new int[n];
        in.position(5 + 8 * n);
        for (int i = 0; i < n; i++) {
            lengths[i] = in.getInt();
        }
        java.util.List<byte[]> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            byte[] value = new byte[lengths[i]];
            in.get(value);
            out.add(value);
        }
        return out;
    }
}

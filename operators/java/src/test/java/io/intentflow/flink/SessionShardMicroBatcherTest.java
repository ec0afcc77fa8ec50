package io.intentflow.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

class SessionShardMicroBatcherTest {

    private static final String KEYS = "10,11,12,13";

    private static byte[] event(String sessionId, int n) {
        return ("{\"event_id\":\"e" + n + "\",\"session_id\":\"" + sessionId + "\",\"n\":" + n + "}")
                .getBytes(StandardCharsets.UTF_8);
    }

    private static String text(byte[] value) {
        return new String(value, StandardCharsets.UTF_8);
    }

    /** The values of a batch as text. */
    private static List<String> values(Row row) {
        List<String> out = new ArrayList<>();
        for (byte[] v : SessionShardMicroBatcher.valuesOf((byte[]) row.getField(1))) {
            out.add(text(v));
        }
        return out;
    }

    private static boolean last(Row row) {
        return (((byte[]) row.getField(1))[0] & SessionShardMicroBatcher.LAST_OF_FLUSH) != 0;
    }

    /** The Kafka timestamps of a batch. */
    private static long[] timestamps(Row row) {
        ByteBuffer in = ByteBuffer.wrap((byte[]) row.getField(1));
        in.get();
        long[] out = new long[in.getInt()];
        for (int i = 0; i < out.length; i++) {
            out[i] = in.getLong();
        }
        return out;
    }

    private static OneInputStreamOperatorTestHarness<byte[], Row> harness(long windowMs, int maxBatch) throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h =
                new OneInputStreamOperatorTestHarness<>(new SessionShardMicroBatcher(KEYS, windowMs, maxBatch));
        h.open();
        return h;
    }

    private static List<Row> batches(OneInputStreamOperatorTestHarness<byte[], Row> h) {
        List<Row> out = new ArrayList<>();
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord) {
                out.add((Row) ((StreamRecord<?>) o).getValue());
            }
        }
        return out;
    }

    private static int expectedKey(String sessionId) {
        CRC32 crc = new CRC32();
        crc.update(sessionId.getBytes(StandardCharsets.UTF_8));
        return new int[] {10, 11, 12, 13}[(int) (crc.getValue() % 4)];
    }

    @Test
    void emitsWhenAShardIsFull() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(20, 3);
        h.processElement(event("s1", 1), 1001L);
        h.processElement(event("s1", 2), 1002L);
        assertEquals(0, batches(h).size());
        h.processElement(event("s1", 3), 1003L);
        List<Row> out = batches(h);
        assertEquals(1, out.size());
        assertEquals(expectedKey("s1"), out.get(0).getField(0));
        assertTrue(last(out.get(0)));
        assertArrayEquals(new long[] {1001, 1002, 1003}, timestamps(out.get(0)));
        assertEquals(List.of(text(event("s1", 1)), text(event("s1", 2)), text(event("s1", 3))), values(out.get(0)));
        h.close();
    }

    @Test
    void emitsEveryShardWhenTheWindowEnds() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(20, 256);
        h.setProcessingTime(100);
        Map<Integer, Integer> perKey = new HashMap<>();
        for (int i = 0; i < 40; i++) {
            String sid = "session-" + (i % 10);
            h.processElement(event(sid, i), 5000L + i);
            perKey.merge(expectedKey(sid), 1, Integer::sum);
        }
        h.setProcessingTime(119);
        assertEquals(0, batches(h).size(), "nothing before window_ms has passed");
        h.setProcessingTime(120);
        List<Row> out = batches(h);
        assertEquals(perKey.size(), out.size(), "one batch per shard that holds events");
        int total = 0;
        for (Row row : out) {
            List<String> batch = values(row);
            int key = (Integer) row.getField(0);
            assertEquals(perKey.get(key), batch.size());
            for (String value : batch) {
                String sid = TopLevelJsonField.stringValue(value, "session_id");
                assertEquals(expectedKey(sid), key, "a session's events all go to its shard");
            }
            assertEquals(batch.size(), timestamps(row).length);
            total += batch.size();
        }
        assertEquals(40, total);
        // one downstream subtask: only the flush's last batch carries the mark
        for (int i = 0; i < out.size(); i++) {
            assertEquals(i == out.size() - 1, last(out.get(i)));
        }
        h.close();
    }

    @Test
    void flushesBeforeTheCheckpointBarrier() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(1000, 256);
        h.processElement(event("a", 1), 1L);
        h.processElement(event("b", 2), 2L);
        h.prepareSnapshotPreBarrier(1L);
        int values = 0;
        for (Row row : batches(h)) {
            values += values(row).size();
        }
        assertEquals(2, values);
        h.close();
    }

    @Test
    void flushesBeforeForwardingTheFinalWatermark() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(1000, 256);
        h.processElement(event("a", 1), 1L);
        h.processWatermark(new Watermark(5L));
        assertEquals(0, batches(h).size(), "an ordinary watermark does not cut the window");
        h.processWatermark(Watermark.MAX_WATERMARK);
        List<Object> out = new ArrayList<>(h.getOutput());
        int firstBatch = -1;
        int maxWatermark = -1;
        for (int i = 0; i < out.size(); i++) {
            if (out.get(i) instanceof StreamRecord && firstBatch < 0) {
                firstBatch = i;
            }
            if (out.get(i) instanceof Watermark && ((Watermark) out.get(i)).getTimestamp() == Long.MAX_VALUE) {
                maxWatermark = i;
            }
        }
        assertTrue(firstBatch >= 0 && maxWatermark > firstBatch, "batch before MAX_WATERMARK: " + out);
        h.close();
    }

    @Test
    void flushesAtEndOfInputAndKeepsRecordsWithoutTimestamp() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(1000, 256);
        h.processElement(new StreamRecord<>(event("a", 1)));
        h.processElement(new StreamRecord<>(event("a", 2)));
        h.endInput();
        List<Row> out = batches(h);
        assertEquals(1, out.size());
        assertTrue(last(out.get(0)));
        assertArrayEquals(new long[] {SessionShardMicroBatcher.NO_TIMESTAMP, SessionShardMicroBatcher.NO_TIMESTAMP},
                timestamps(out.get(0)));
        assertEquals(List.of(text(event("a", 1)), text(event("a", 2))), values(out.get(0)));
        h.close();
    }

    @Test
    void unroutableValuesGoToShardZero() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(1000, 1);
        h.processElement("not json at all".getBytes(StandardCharsets.UTF_8), 1L);
        h.processElement(new StreamRecord<>(null, 2L));  // a Kafka tombstone
        List<Row> out = batches(h);
        assertEquals(2, out.size());
        assertEquals(10, out.get(0).getField(0));
        assertInstanceOf(byte[].class, out.get(0).getField(1));
        assertEquals(List.of("not json at all"), values(out.get(0)));
        assertEquals(List.of(""), values(out.get(1)));
        h.close();
    }

    @Test
    void multiByteAndEscapedSessionIdsGoToTheShardOfTheirUtf8() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(1000, 1);
        String[] ids = {"caf\u00e9-\uD83D\uDE00", "plain-1"};
        h.processElement(event(ids[0], 1), 1L);
        h.processElement(("{\"session_id\":\"caf\\u00e9-\\ud83d\\ude00\"}").getBytes(StandardCharsets.UTF_8), 2L);
        h.processElement(event(ids[1], 3), 3L);
        List<Row> out = batches(h);
        assertEquals(3, out.size());
        assertEquals(expectedKey(ids[0]), out.get(0).getField(0));
        assertEquals(expectedKey(ids[0]), out.get(1).getField(0), "the escaped id routes like the raw one");
        assertEquals(expectedKey(ids[1]), out.get(2).getField(0));
        h.close();
    }

    /** The same bytes as GOLDEN_HEX in tests/unit/test_batch_layout.py, which udfs.batch_layout reads. */
    @Test
    void layoutIsTheOnePythonReads() throws Exception {
        OneInputStreamOperatorTestHarness<byte[], Row> h = harness(1000, 2);
        h.processElement("{\"a\":1}".getBytes(StandardCharsets.UTF_8), 5L);
        h.processElement(new StreamRecord<>("xy".getBytes(StandardCharsets.UTF_8)));
        List<Row> out = batches(h);
        assertEquals(1, out.size());
        StringBuilder hex = new StringBuilder();
        for (byte b : (byte[]) out.get(0).getField(1)) {
            hex.append(String.format("%02x", b));
        }
        assertEquals("01000000020000000000000005800000000000000000000007000000027b2261223a317d7879", hex.toString());
        h.close();
    }

    @Test
    void shardKeysFallOneInEachKeyGroup() {
        for (int maxParallelism : new int[] {1, 2, 8, 128}) {
            String[] keys = SessionShardMicroBatcher.shardKeysCsv(maxParallelism).split(",");
            assertEquals(maxParallelism, keys.length);
            for (int group = 0; group < maxParallelism; group++) {
                assertEquals(group, org.apache.flink.runtime.state.KeyGroupRangeAssignment.assignToKeyGroup(
                        Row.of(Integer.parseInt(keys[group])), maxParallelism));
            }
        }
    }

    @Test
    void marksTheLastBatchOfAFlushPerDownstreamSubtask() throws Exception {
        String keys = SessionShardMicroBatcher.shardKeysCsv(8);
        OneInputStreamOperatorTestHarness<byte[], Row> h = new OneInputStreamOperatorTestHarness<>(
                new SessionShardMicroBatcher(keys, 20, 256, 2, 8));
        h.open();
        for (int i = 0; i < 200; i++) {
            h.processElement(event("session-" + i, i), i);
        }
        h.setProcessingTime(20);
        Map<Integer, Integer> lastMarks = new HashMap<>();
        Map<Integer, Integer> seenPerOwner = new HashMap<>();
        List<Row> out = batches(h);
        assertEquals(8, out.size());
        for (Row row : out) {
            int owner = org.apache.flink.runtime.state.KeyGroupRangeAssignment.assignKeyToParallelOperator(
                    Row.of(row.getField(0)), 8, 2);
            seenPerOwner.merge(owner, 1, Integer::sum);
            if (last(row)) {
                lastMarks.merge(owner, 1, Integer::sum);
            }
        }
        assertEquals(Map.of(0, 1, 1, 1), lastMarks, "one mark per downstream subtask");
        // the marked batch is the last of its owner in emission order
        Map<Integer, Integer> lastIndex = new HashMap<>();
        for (int i = 0; i < out.size(); i++) {
            lastIndex.put(org.apache.flink.runtime.state.KeyGroupRangeAssignment.assignKeyToParallelOperator(
                    Row.of(out.get(i).getField(0)), 8, 2), i);
        }
        for (int owner : lastIndex.keySet()) {
            assertTrue(last(out.get(lastIndex.get(owner))));
        }
        h.close();
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> new SessionShardMicroBatcher("", 20, 10));
        assertThrows(IllegalArgumentException.class, () -> new SessionShardMicroBatcher("1", 0, 10));
        assertThrows(IllegalArgumentException.class, () -> new SessionShardMicroBatcher("1", 20, 0));
    }
}

package io.intentflow.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

class TopLevelJsonFieldTest {

    @Test
    void readsTopLevelStringAfterNestedValues() {
        String json = "{\"props\":{\"session_id\":\"inner\",\"a\":[1,{\"b\":\"}\"}]},\"n\":-1.5e3,"
                + "\"ok\":true,\"x\":null, \"session_id\" : \"outer\"}";
        assertEquals("outer", TopLevelJsonField.stringValue(json, "session_id"));
    }

    @Test
    void decodesEscapesLikeAJsonParser() {
        assertEquals("a\"b\\c/d\n\t", TopLevelJsonField.stringValue(
                "{\"session_id\":\"a\\\"b\\\\c\\/d\\n\\t\"}", "session_id"));
        assertEquals("caf\u00e9 \uD83D\uDE00", TopLevelJsonField.stringValue(
                "{\"session_id\":\"caf\\u00e9 \\ud83d\\ude00\"}", "session_id"));
        assertEquals("caf\u00e9", TopLevelJsonField.stringValue("{\"session_id\":\"caf\u00e9\"}", "session_id"));
    }

    @Test
    void escapedKeyMatchesToo() {
        assertEquals("s1", TopLevelJsonField.stringValue("{\"session\\u005fid\":\"s1\"}", "session_id"));
    }

    @Test
    void absentWrongTypeOrMalformedGiveNull() {
        assertNull(TopLevelJsonField.stringValue("{\"a\":1}", "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"session_id\":12}", "session_id"));
        assertNull(TopLevelJsonField.stringValue("[\"session_id\",\"x\"]", "session_id"));
        assertNull(TopLevelJsonField.stringValue("not json", "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"session_id\":\"unterminated", "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"a\":{\"b\":1}", "session_id"));
        assertNull(TopLevelJsonField.stringValue("", "session_id"));
        assertNull(TopLevelJsonField.stringValue(null, "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"session_id\":\"bad \\q escape\"}", "session_id"));
    }

    @Test
    void bytesAreReadWithoutDecodingTheDocument() {
        byte[] doc = "{\"t\":\"\u00e9\u00e9\",\"session_id\":\"caf\u00e9-\uD83D\uDE00\"}".getBytes(StandardCharsets.UTF_8);
        assertArrayEquals("caf\u00e9-\uD83D\uDE00".getBytes(StandardCharsets.UTF_8),
                TopLevelJsonField.utf8Value(doc, "session_id"));
        byte[] escaped = "{\"session_id\":\"caf\\u00e9-\\ud83d\\ude00\"}".getBytes(StandardCharsets.UTF_8);
        assertArrayEquals("caf\u00e9-\uD83D\uDE00".getBytes(StandardCharsets.UTF_8),
                TopLevelJsonField.utf8Value(escaped, "session_id"));
        byte[] latin1 = {'{', '"', 's', '"', ':', '"', (byte) 0xe9, '"', '}'};  // not UTF-8: raw bytes routed as they are
        assertArrayEquals(new byte[] {(byte) 0xe9}, TopLevelJsonField.utf8Value(latin1, "s"));
        assertNull(TopLevelJsonField.utf8Value(null, "session_id"));
        assertNull(TopLevelJsonField.utf8Value(new byte[0], "session_id"));
    }
}

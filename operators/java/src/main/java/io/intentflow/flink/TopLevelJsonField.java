package io.intentflow.flink;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads one string-valued field at the top level of a JSON object without building a tree.
 *
 * <p>The micro-batcher needs only the {@code session_id} of each raw Kafka value to route it to its
 * session shard; the full parse and validation happen once, in Python ({@code udfs.contract}). Nested
 * objects and arrays are skipped, so a {@code session_id} key inside {@code props} is never taken for
 * the envelope's. String escapes ({@code \n}, {@code \"}, {@code \\uXXXX} incl. surrogate pairs) are
 * decoded, so the value equals what a JSON parser returns (RFC 8259 §7).
 *
 * <p>Anything that is not a JSON object with that field as a string yields {@code null}; the caller
 * routes such values to a fixed shard, where the Python parse sends them to the DLQ with a reason.
 *
 * <p>{@link #utf8Value} reads the raw UTF-8 bytes of a Kafka value without making a {@code String} of it
 * (the job's hot path): JSON's structural characters are ASCII and no byte of a multi-byte UTF-8 sequence
 * is below 0x80 (RFC 3629 §3), so the structure is scanned byte by byte; only a string with an escape is
 * decoded through a {@code String}.
 */
public final class TopLevelJsonField {

    private TopLevelJsonField() {}

    /**
     * @param json one Kafka value, UTF-8 bytes of a JSON document
     * @param field the top-level key to read
     * @return the UTF-8 bytes of the decoded string value (what a JSON parser returns, encoded; the raw
     *     bytes when the string has no escape), or {@code null} when absent, not a string or not valid JSON
     *     up to that point
     */
    public static byte[] utf8Value(byte[] json, String field) {
        if (json == null) {
            return null;
        }
        final byte[] name = field.getBytes(StandardCharsets.UTF_8);
        final int n = json.length;
        int i = skipWs(json, 0);
        if (i >= n || json[i] != '{') {
            return null;
        }
        i++;
        while (true) {
            i = skipWs(json, i);
            if (i >= n) {
                return null;
            }
            byte c = json[i];
            if (c == '}') {
                return null;
            }
            if (c == ',') {
                i++;
                continue;
            }
            if (c != '"') {
                return null;
            }
            int keyStart = i;
            i = endOfString(json, i);
            if (i < 0) {
                return null;
            }
            boolean isField = sameString(json, keyStart, i, name);
            i = skipWs(json, i);
            if (i >= n || json[i] != ':') {
                return null;
            }
            i = skipWs(json, i + 1);
            if (i >= n) {
                return null;
            }
            if (isField) {
                if (json[i] != '"') {
                    return null;
                }
                int end = endOfString(json, i);
                return end < 0 ? null : decoded(json, i, end);
            }
            i = skipValue(json, i);
            if (i < 0) {
                return null;
            }
        }
    }

    /** The decoded UTF-8 bytes of the string {@code json[start..end)} (quotes included), or null. */
    private static byte[] decoded(byte[] json, int start, int end) {
        for (int k = start + 1; k < end - 1; k++) {
            if (json[k] == '\\') {
                StringBuilder out = new StringBuilder();
                String text = new String(json, start, end - start, StandardCharsets.UTF_8);
                return readString(text, 0, out) < 0 ? null : out.toString().getBytes(StandardCharsets.UTF_8);
            }
        }
        return Arrays.copyOfRange(json, start + 1, end - 1);
    }

    private static boolean sameString(byte[] json, int start, int end, byte[] name) {
        if (end - start - 2 == name.length) {
            return Arrays.equals(json, start + 1, end - 1, name, 0, name.length);
        }
        byte[] key = decoded(json, start, end);  // a key written with escapes can still match
        return key != null && Arrays.equals(key, name);
    }

    private static int skipWs(byte[] s, int i) {
        final int n = s.length;
        while (i < n) {
            byte c = s[i];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                break;
            }
            i++;
        }
        return i;
    }

    /** The index after the string starting at the quote {@code s[i]}, or -1 when it does not end. */
    private static int endOfString(byte[] s, int i) {
        final int n = s.length;
        i++;
        while (i < n) {
            byte c = s[i];
            if (c == '"') {
                return i + 1;
            }
            i += c == '\\' ? 2 : 1;
        }
        return -1;
    }

    /** Skips one JSON value starting at {@code s[i]}; returns the index after it, or -1. */
    private static int skipValue(byte[] s, int i) {
        final int n = s.length;
        byte c = s[i];
        if (c == '"') {
            return endOfString(s, i);
        }
        if (c == '{' || c == '[') {
            int depth = 0;
            while (i < n) {
                c = s[i];
                if (c == '"') {
                    i = endOfString(s, i);
                    if (i < 0) {
                        return -1;
                    }
                    continue;
                }
                if (c == '{' || c == '[') {
                    depth++;
                } else if (c == '}' || c == ']') {
                    depth--;
                    if (depth == 0) {
                        return i + 1;
                    }
                }
                i++;
            }
            return -1;
        }
        while (i < n) {
            c = s[i];
            if (c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                return i;
            }
            i++;
        }
        return -1;
    }

    /**
     * {@link #utf8Value} for text (tests and tools).
     *
     * @param json a JSON document
     * @param field the top-level key to read
     * @return the decoded string value, or {@code null} when absent, not a string or not valid JSON
     *     up to that point
     */
    public static String stringValue(String json, String field) {
        byte[] value = json == null ? null : utf8Value(json.getBytes(StandardCharsets.UTF_8), field);
        return value == null ? null : new String(value, StandardCharsets.UTF_8);
    }

    /** Reads the string starting at the quote {@code s[i]} into {@code out}; returns the index after it, or -1. */
    private static int readString(String s, int i, StringBuilder out) {
        final int n = s.length();
        i++;
        while (i < n) {
            char c = s.charAt(i);
            if (c == '"') {
                return i + 1;
            }
            if (c != '\\') {
                if (out != null) {
                    out.append(c);
                }
                i++;
                continue;
            }
            if (i + 1 >= n) {
                return -1;
            }
            char e = s.charAt(i + 1);
            char decoded;
            switch (e) {
                case '"': decoded = '"'; break;
                case '\\': decoded = '\\'; break;
                case '/': decoded = '/'; break;
                case 'b': decoded = '\b'; break;
                case 'f': decoded = '\f'; break;
                case 'n': decoded = '\n'; break;
                case 'r': decoded = '\r'; break;
                case 't': decoded = '\t'; break;
                case 'u':
                    if (i + 6 > n) {
                        return -1;
                    }
                    try {
                        decoded = (char) Integer.parseInt(s.substring(i + 2, i + 6), 16);
                    } catch (NumberFormatException ex) {
                        return -1;
                    }
                    if (out != null) {
                        out.append(decoded);
                    }
                    i += 6;
                    continue;
                default:
                    return -1;
            }
            if (out != null) {
                out.append(decoded);
            }
            i += 2;
        }
        return -1;
    }
}

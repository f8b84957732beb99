package dev.panorm;

/**
 * A oneDNN call returned a status other than success. The message names the C function, oneDNN's
 * status and the operation and shapes involved.
 *
 * <p>Guide: {@code docs/api.md} (errors).
 */
public final class OneDnnException extends PanormException {
    private static final long serialVersionUID = 1L;

    /** The status as panorm names it, derived from {@link #code}. */
    private final OneDnnStatus status;
    /** The raw {@code dnnl_status_t}, kept because {@link #status} may be {@link OneDnnStatus#UNKNOWN}. */
    private final int code;

    OneDnnException(int code, String call, String context) {
        super(call + " failed with " + name(code) + " (" + context + ")", null);
        this.status = OneDnnStatus.of(code);
        this.code = code;
    }

    /** {@return the status oneDNN returned, {@link OneDnnStatus#UNKNOWN} if this panorm does not know its code} */
    public OneDnnStatus status() {
        return status;
    }

    /** {@return the raw {@code dnnl_status_t} value} */
    public int code() {
        return code;
    }

    private static String name(int code) {
        OneDnnStatus status = OneDnnStatus.of(code);
        return status == OneDnnStatus.UNKNOWN ? "unknown status " + code : status.nativeName();
    }
}

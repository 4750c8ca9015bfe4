package sealcard.applet.model;

import java.util.Map;
import java.util.Set;
import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;

/**
 * Rewrites an applet class so that its persistent writes go through {@link CardMemory}
 * (see there for the model). What changes, outside constructors and static initializers
 * (install time, never torn):
 *
 * <ul>
 *   <li>{@code PUTFIELD} on an applet object: {@link CardMemory#fieldWrite} first;</li>
 *   <li>{@code BASTORE}, {@code SASTORE}, {@code AASTORE}: {@link CardMemory}'s stores, which
 *       count and journal only writes into persistent arrays;</li>
 *   <li>{@code JCSystem} transactions and {@code Util.arrayCopy*}, {@code arrayFillNonAtomic},
 *       {@code setShort}: the model's;</li>
 *   <li>every call that changes a key object: {@link KeyCalls};
 *       {@code RandomData.generateData}: {@link Randomness};</li>
 * </ul>
 * and everywhere: arrays the applet allocates are registered as persistent, and
 * {@code new OwnerPIN} becomes {@code new ModelOwnerPIN}. A write the model does not know
 * (a key setter not listed here, a static field written after install, an int array)
 * stops the instrumentation with an error instead of slipping through unmodelled.
 */
public final class Instrumenter {

    private static final String MEMORY = "sealcard/applet/model/CardMemory";
    private static final String KEYS = "sealcard/applet/model/KeyCalls";
    private static final String RANDOM = "sealcard/applet/model/Randomness";
    private static final String OWNER_PIN = "javacard/framework/OwnerPIN";
    private static final String MODEL_PIN = "sealcard/applet/model/ModelOwnerPIN";
    private static final String APPLET_PACKAGE = "sealcard/applet/";

    private static final Set<String> TRANSACTION = Set.of("beginTransaction",
            "commitTransaction", "abortTransaction", "getTransactionDepth");
    private static final Set<String> UTIL_WRITES = Set.of("arrayCopy", "arrayCopyNonAtomic",
            "arrayFillNonAtomic", "setShort");
    /** Key-changing interface methods and the {@link KeyCalls} method that models each. */
    private static final Map<String, String> KEY_WRITES = Map.ofEntries(
            Map.entry("javacard/security/ECPublicKey.setW", "ECPublicKey_setW"),
            Map.entry("javacard/security/ECPrivateKey.setS", "ECPrivateKey_setS"),
            Map.entry("javacard/security/ECKey.setA", "ECKey_setA"),
            Map.entry("javacard/security/ECKey.setB", "ECKey_setB"),
            Map.entry("javacard/security/ECKey.setG", "ECKey_setG"),
            Map.entry("javacard/security/ECKey.setR", "ECKey_setR"),
            Map.entry("javacard/security/ECKey.setK", "ECKey_setK"),
            Map.entry("javacard/security/ECKey.setFieldFP", "ECKey_setFieldFP"),
            Map.entry("javacard/security/RSAPublicKey.setExponent", "RSAPublicKey_setExponent"));

    private Instrumenter() {
    }

    /** The rewritten class file. */
    public static byte[] instrument(byte[] classFile) {
        ClassReader reader = new ClassReader(classFile);
        ClassWriter writer = new ClassWriter(reader, ClassWriter.COMPUTE_MAXS);
        reader.accept(new ClassVisitor(Opcodes.ASM9, writer) {
            private String className;

            @Override
            public void visit(int version, int access, String name, String signature,
                    String superName, String[] interfaces) {
                className = name;
                super.visit(version, access, name, signature, superName, interfaces);
            }

            @Override
            public MethodVisitor visitMethod(int access, String name, String descriptor,
                    String signature, String[] exceptions) {
                MethodVisitor next = super.visitMethod(access, name, descriptor, signature,
                        exceptions);
                boolean install = name.equals("<init>") || name.equals("<clinit>");
                return new Rewriter(next, className + "." + name, install);
            }
        }, 0);
        return writer.toByteArray();
    }

    private static final class Rewriter extends MethodVisitor {
        private final String where;
        private final boolean install;

        Rewriter(MethodVisitor next, String where, boolean install) {
            super(Opcodes.ASM9, next);
            this.where = where;
            this.install = install;
        }

        @Override
        public void visitFieldInsn(int opcode, String owner, String name, String descriptor) {
            if (opcode == Opcodes.PUTFIELD && !install && owner.startsWith(APPLET_PACKAGE)) {
                if (descriptor.equals("J") || descriptor.equals("D")) {
                    throw new IllegalStateException(where + ": 64-bit field " + name);
                }
                super.visitInsn(Opcodes.DUP2);
                super.visitInsn(Opcodes.POP);
                super.visitLdcInsn(name);
                super.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, "fieldWrite",
                        "(Ljava/lang/Object;Ljava/lang/String;)V", false);
            } else if (opcode == Opcodes.PUTSTATIC && !install) {
                throw new IllegalStateException(where + ": static field written after install: "
                        + owner + "." + name);
            }
            super.visitFieldInsn(opcode, owner, name, descriptor);
        }

        @Override
        public void visitInsn(int opcode) {
            switch (opcode) {
                case Opcodes.BASTORE -> store("bastore", "(Ljava/lang/Object;II)V");
                case Opcodes.SASTORE -> store("sastore", "([SII)V");
                case Opcodes.AASTORE -> store("aastore",
                        "([Ljava/lang/Object;ILjava/lang/Object;)V");
                case Opcodes.IASTORE, Opcodes.LASTORE, Opcodes.FASTORE, Opcodes.DASTORE,
                        Opcodes.CASTORE -> throw new IllegalStateException(
                                where + ": array type outside the Java Card subset");
                default -> super.visitInsn(opcode);
            }
        }

        private void store(String hook, String descriptor) {
            super.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, hook, descriptor, false);
        }

        @Override
        public void visitIntInsn(int opcode, int operand) {
            super.visitIntInsn(opcode, operand);
            if (opcode == Opcodes.NEWARRAY) {
                String type = switch (operand) {
                    case Opcodes.T_BYTE -> "[B";
                    case Opcodes.T_SHORT -> "[S";
                    case Opcodes.T_BOOLEAN -> "[Z";
                    default -> throw new IllegalStateException(
                            where + ": array type outside the Java Card subset");
                };
                registerArray(type);
            }
        }

        @Override
        public void visitTypeInsn(int opcode, String type) {
            if (opcode == Opcodes.NEW && type.equals(OWNER_PIN)) {
                super.visitTypeInsn(opcode, MODEL_PIN);
                return;
            }
            super.visitTypeInsn(opcode, type);
            if (opcode == Opcodes.ANEWARRAY) {
                registerArray(type.startsWith("[") ? "[" + type : "[L" + type + ";");
            }
        }

        private void registerArray(String arrayType) {
            super.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, "persistentArray",
                    "(Ljava/lang/Object;)Ljava/lang/Object;", false);
            super.visitTypeInsn(Opcodes.CHECKCAST, arrayType);
        }

        @Override
        public void visitMethodInsn(int opcode, String owner, String name, String descriptor,
                boolean isInterface) {
            if (opcode == Opcodes.INVOKESPECIAL && owner.equals(OWNER_PIN)
                    && name.equals("<init>")) {
                super.visitMethodInsn(opcode, MODEL_PIN, name, descriptor, false);
                return;
            }
            if (install) {
                super.visitMethodInsn(opcode, owner, name, descriptor, isInterface);
                return;
            }
            if (owner.equals("javacard/framework/JCSystem") && TRANSACTION.contains(name)) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, name, descriptor, false);
                return;
            }
            if (owner.equals("javacard/framework/Util") && UTIL_WRITES.contains(name)) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, name, descriptor, false);
                return;
            }
            if (owner.equals("javacard/security/RandomData") && name.equals("generateData")) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, RANDOM, name,
                        "(Ljavacard/security/RandomData;" + descriptor.substring(1), false);
                return;
            }
            if (owner.equals("javacard/security/KeyPair") && name.equals("genKeyPair")) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, KEYS, "KeyPair_genKeyPair",
                        "(Ljavacard/security/KeyPair;)V", false);
                return;
            }
            if (owner.startsWith("javacard/security/") && name.equals("clearKey")) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, KEYS, "Key_clearKey",
                        "(Ljavacard/security/Key;)V", false);
                return;
            }
            String key = owner + "." + name;
            String hook = KEY_WRITES.get(key);
            if (hook != null) {
                super.visitMethodInsn(Opcodes.INVOKESTATIC, KEYS, hook,
                        "(L" + owner + ";" + descriptor.substring(1), false);
                return;
            }
            if (owner.startsWith("javacard/security/") && owner.endsWith("Key")
                    && name.startsWith("set")) {
                throw new IllegalStateException(where + ": unmodelled key write " + key);
            }
            super.visitMethodInsn(opcode, owner, name, descriptor, isInterface);
        }
    }
}

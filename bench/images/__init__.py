"""Everything that makes a root or a guest to run in: our rootfs (image), user images (image_import,
user_image), the app suite's Debian image (app_image), the microvm kernel (kernel) and the VM's
initramfs. Each is cached by content and written atomically; none imports pandas."""

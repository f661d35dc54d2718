echo "hello from the guest: $(uname -sr)"

/** An application that is a module and uses panorm's. */
module example.consumer {
    requires dev.panorm;

    exports example;
}

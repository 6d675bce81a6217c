import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

import org.elasticsearch.action.ActionRequestValidationException;
import org.elasticsearch.common.CheckedFunction;
import org.elasticsearch.common.ParseField;
import org.elasticsearch.common.Strings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.xcontent.DeprecationHandler;
import org.elasticsearch.common.xcontent.NamedXContentRegistry;
import org.elasticsearch.common.xcontent.ToXContent;
import org.elasticsearch.common.xcontent.XContentBuilder;
import org.elasticsearch.common.xcontent.XContentParser;
import org.elasticsearch.common.xcontent.json.JsonXContent;
import org.elasticsearch.xpack.core.XPackClientPlugin;
import org.elasticsearch.xpack.core.ilm.AllocateAction;
import org.elasticsearch.xpack.core.ilm.DeleteAction;
import org.elasticsearch.xpack.core.ilm.ForceMergeAction;
import org.elasticsearch.xpack.core.ilm.FreezeAction;
import org.elasticsearch.xpack.core.ilm.LifecycleAction;
import org.elasticsearch.xpack.core.ilm.LifecycleType;
import org.elasticsearch.xpack.core.ilm.MigrateAction;
import org.elasticsearch.xpack.core.ilm.ReadOnlyAction;
import org.elasticsearch.xpack.core.ilm.RolloverAction;
import org.elasticsearch.xpack.core.ilm.SearchableSnapshotAction;
import org.elasticsearch.xpack.core.ilm.SetPriorityAction;
import org.elasticsearch.xpack.core.ilm.ShrinkAction;
import org.elasticsearch.xpack.core.ilm.TimeseriesLifecycleType;
import org.elasticsearch.xpack.core.ilm.UnfollowAction;
import org.elasticsearch.xpack.core.ilm.WaitForSnapshotAction;
import org.elasticsearch.xpack.core.ilm.action.PutLifecycleAction;

/**
 * Elasticsearch 7.10.2's own reading of a {@code PUT _ilm/policy/NAME} body, for lc_trace's tests
 * (tests/stack/ilm.py): the test node is the OSS build, without index lifecycle management, so the
 * policy is checked by the X-Pack classes that parse and validate it on a node that has ILM.
 *
 * <pre>java -cp 'lib/*:classes' IlmPolicyCheck NAME BODY_FILE</pre>
 *
 * Prints the policy as Elasticsearch understood it (JSON) and exits 0, or prints why it was refused and
 * exits 1. The actions are registered as the ILM plugin registers them (x-pack-ilm is not on Maven Central).
 */
public final class IlmPolicyCheck {

    private IlmPolicyCheck() {
    }

    private static NamedXContentRegistry.Entry action(final String name,
            final CheckedFunction<XContentParser, ? extends LifecycleAction, IOException> parse) {
        return new NamedXContentRegistry.Entry(LifecycleAction.class, new ParseField(name), parse);
    }

    public static void main(final String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: IlmPolicyCheck NAME BODY_FILE");
            System.exit(2);
        }
        final List<NamedXContentRegistry.Entry> entries =
                new ArrayList<>(new XPackClientPlugin(Settings.EMPTY).getNamedXContent());
        final CheckedFunction<XContentParser, LifecycleType, IOException> timeseries =
                (parser) -> TimeseriesLifecycleType.INSTANCE;
        entries.add(new NamedXContentRegistry.Entry(LifecycleType.class, new ParseField(TimeseriesLifecycleType.TYPE),
                timeseries));
        entries.add(action(AllocateAction.NAME, AllocateAction::parse));
        entries.add(action(WaitForSnapshotAction.NAME, WaitForSnapshotAction::parse));
        entries.add(action(DeleteAction.NAME, DeleteAction::parse));
        entries.add(action(ForceMergeAction.NAME, ForceMergeAction::parse));
        entries.add(action(ReadOnlyAction.NAME, ReadOnlyAction::parse));
        entries.add(action(RolloverAction.NAME, RolloverAction::parse));
        entries.add(action(ShrinkAction.NAME, ShrinkAction::parse));
        entries.add(action(FreezeAction.NAME, FreezeAction::parse));
        entries.add(action(SetPriorityAction.NAME, SetPriorityAction::parse));
        entries.add(action(UnfollowAction.NAME, UnfollowAction::parse));
        entries.add(action(SearchableSnapshotAction.NAME, SearchableSnapshotAction::parse));
        entries.add(action(MigrateAction.NAME, MigrateAction::parse));
        final NamedXContentRegistry registry = new NamedXContentRegistry(entries);
        final byte[] body = Files.readAllBytes(Paths.get(args[1]));
        try (XContentParser parser = JsonXContent.jsonXContent.createParser(registry,
                DeprecationHandler.THROW_UNSUPPORTED_OPERATION, body)) {
            final PutLifecycleAction.Request request = PutLifecycleAction.Request.parseRequest(args[0], parser);
            final ActionRequestValidationException invalid = request.validate();
            if (invalid != null) {
                System.err.println(invalid.getMessage());
                System.exit(1);
            }
            final XContentBuilder out = JsonXContent.contentBuilder();
            request.getPolicy().toXContent(out, ToXContent.EMPTY_PARAMS);
            System.out.println(Strings.toString(out));
        } catch (final RuntimeException e) {
            final StringBuilder why = new StringBuilder(String.valueOf(e.getMessage()));
            for (Throwable cause = e.getCause(); cause != null && cause != cause.getCause(); cause = cause.getCause()) {
                why.append(": ").append(cause.getMessage());
            }
            System.err.println(why);
            System.exit(1);
        }
    }
}
